"""`tutor eval`: answer a question set and score fact recall, source hits, scope and speed."""

from __future__ import annotations

import json
import re
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .answer import Answer, Tutor
from .errors import TutorError


def load_questions(path: Path) -> list[dict[str, Any]]:
    """Questions, one JSON object a line (format of shared/eval/dev_questions.jsonl)."""
    questions = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError as exc:
            raise TutorError(f"{path}:{number}: not JSON: {exc}") from None
        if not isinstance(item, dict) or not isinstance(item.get("question"), str) or "id" not in item:
            raise TutorError(f"{path}:{number}: each line needs an 'id' and a 'question'")
        questions.append(item)
    return questions


def facts_found(answer: str, facts: list[list[str]]) -> list[bool]:
    """For each fact (a list of alternative patterns), whether the answer states it."""
    return [any(re.search(pattern, answer, re.IGNORECASE) for pattern in fact) for fact in facts]


def source_hit(answer: Answer, phrase: str) -> bool:
    """Whether a passage given to the model contains the phrase that answers the question."""
    return any(re.search(phrase, f"{p.section}\n{p.text}", re.IGNORECASE) for p in answer.sources)


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run_eval(
    tutor: Tutor,
    questions: list[dict[str, Any]],
    out: Path,
    *,
    preset: str | None = None,
    retrieval: bool = True,
    progress: Callable[[int, int, str], None] | None = None,
) -> dict[str, Any]:
    """Answer every question, write one JSON line each to `out`, and return the scores."""
    found: list[bool] = []
    hits: list[bool] = []
    flagged: list[bool] = []
    refused_in_scope: list[bool] = []
    first_token: list[float] = []
    total: list[float] = []
    with out.open("w", encoding="utf-8") as handle:
        for number, item in enumerate(questions, start=1):
            if progress:
                progress(number, len(questions), str(item["id"]))
            history = [tuple(turn) for turn in item.get("history") or []]
            answer = tutor.ask(item["question"], history, preset=preset, retrieval=retrieval)
            record = answer.to_dict()
            record.pop("prompt", None)
            record["id"] = item["id"]
            record["facts_found"] = facts_found(answer.answer, item.get("facts") or [])
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            if item.get("out_of_scope"):
                flagged.append(answer.in_scope is False)
                continue
            found.extend(record["facts_found"])
            refused_in_scope.append(answer.in_scope is False)
            if item.get("source_phrase") and retrieval:
                hits.append(source_hit(answer, item["source_phrase"]))
            if answer.timings["first_token_s"] is not None:
                first_token.append(answer.timings["first_token_s"])
            total.append(answer.timings["total_s"])  # type: ignore[arg-type]

    def rate(values: list[bool]) -> float | None:
        return round(sum(values) / len(values), 3) if values else None

    return {
        "questions": len(questions),
        "fact_recall": rate(found),
        "facts": len(found),
        "source_hit_rate": rate(hits),
        "source_questions": len(hits),
        "out_of_scope_flagged": rate(flagged),
        "out_of_scope_questions": len(flagged),
        "in_scope_refused": rate(refused_in_scope),
        "first_token_p50_s": _percentile(first_token, 0.5),
        "first_token_p95_s": _percentile(first_token, 0.95),
        "answer_p50_s": _percentile(total, 0.5),
        "answer_p95_s": _percentile(total, 0.95),
        "answer_mean_s": round(statistics.fmean(total), 3) if total else None,
    }


def format_scores(scores: dict[str, Any]) -> str:
    """The scores as aligned lines."""
    return "\n".join(f"{name:24} {value}" for name, value in scores.items())
