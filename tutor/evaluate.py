"""`tutor eval`: answer a question set and score fact recall, source hits, scope, speed and length.

Every set is split into a tuning half and a hold-out half by a fixed rule on each question's id
(`half_of`), so that a change tuned on one half can be judged on questions it was not tuned on.
The rule needs no list of ids to keep in step with the sets: a new question falls into a half by
its id alone, and never moves.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from .answer import Answer, Tutor
from .errors import TutorError
from .markers import CITATION_MARKERS

Half = Literal["tune", "holdout"]
HALVES: tuple[Half, ...] = ("tune", "holdout")
HALF_LABELS = {"tune": "tune", "holdout": "hold-out", "all": "all"}
_WORD = re.compile(r"\w")


def half_of(question_id: object) -> Half:
    """The half a question belongs to: the first byte of SHA-256 of its id, even for tune, odd for hold-out.

    A hash, not Python's hash() (salted per process) nor the question's position (a new line would
    move others), so the split is the same on every machine and every run.
    """
    first_byte = hashlib.sha256(str(question_id).encode("utf-8")).digest()[0]
    return "tune" if first_byte % 2 == 0 else "holdout"


def select_half(questions: Sequence[dict[str, Any]], half: str) -> list[dict[str, Any]]:
    """The questions of one half ("tune", "holdout"), or all of them ("all")."""
    if half == "all":
        return list(questions)
    if half not in HALVES:
        raise TutorError(f"unknown half {half!r}: choose tune, holdout or all")
    return [item for item in questions if half_of(item["id"]) == half]


def load_questions(path: Path) -> list[dict[str, Any]]:
    """Questions, one JSON object a line (format of shared/eval/README.md); ids must be unique."""
    questions = []
    seen: set[str] = set()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError as exc:
            raise TutorError(f"{path}:{number}: not JSON: {exc}") from None
        if not isinstance(item, dict) or not isinstance(item.get("question"), str) or "id" not in item:
            raise TutorError(f"{path}:{number}: each line needs an 'id' and a 'question'")
        history = item.get("history") or []
        if not isinstance(history, list) or not all(
            isinstance(turn, list) and len(turn) == 2 and all(isinstance(text, str) for text in turn)
            for turn in history
        ):
            raise TutorError(f"{path}:{number}: 'history' must be a list of [question, answer] pairs")
        if str(item["id"]) in seen:  # the same id twice would put two questions in one half for good
            raise TutorError(f"{path}:{number}: the id {item['id']!r} is used twice")
        seen.add(str(item["id"]))
        questions.append(item)
    return questions


def facts_found(answer: str, facts: list[list[str]]) -> list[bool]:
    """For each fact (a list of alternative patterns), whether the answer states it."""
    return [any(re.search(pattern, answer, re.IGNORECASE) for pattern in fact) for fact in facts]


def source_hit(answer: Answer, phrase: str) -> bool:
    """Whether a passage given to the model contains the phrase that answers the question.

    The phrase is text to find ("$10M-$100M+") or, as some sets write it, a regular expression
    ("trillions|terabytes"): either finding it counts.
    """
    needle = phrase.casefold()
    for passage in answer.sources:
        text = f"{passage.section}\n{passage.text}"
        if needle in text.casefold():
            return True
        try:
            if re.search(phrase, text, re.IGNORECASE):
                return True
        except re.error:
            continue
    return False


def answer_words(text: str) -> int:
    """Words in an answer, not counting citation markers or lone punctuation."""
    return sum(1 for token in CITATION_MARKERS.sub(" ", text).split() if _WORD.search(token))


@dataclass(frozen=True)
class Outcome:
    """How one question was answered: what the scores are computed from."""

    id: str
    half: Half
    out_of_scope: bool
    facts_found: tuple[bool, ...]
    source_hit: bool | None  # None: the question names no source phrase, or retrieval was off
    refused: bool
    first_token_s: float | None
    total_s: float
    words: int


def outcome_of(
    item: dict[str, Any],
    answer: str,
    *,
    total_s: float,
    first_token_s: float | None = None,
    source_hit: bool | None = None,
    refused: bool = False,
) -> Outcome:
    """How one answer to a set's question went: the tutor's (`run_eval`) and a baseline's
    (benchmarks/bench_plain_loop.py) are scored by this one rule."""
    return Outcome(
        id=str(item["id"]),
        half=half_of(item["id"]),
        out_of_scope=bool(item.get("out_of_scope")),
        facts_found=tuple(facts_found(answer, item.get("facts") or [])),
        source_hit=source_hit,
        refused=refused,
        first_token_s=first_token_s,
        total_s=total_s,
        words=answer_words(answer),
    )


def outcome_record(outcome: Outcome) -> dict[str, Any]:
    """The outcome's fields written beside each answer in a run's JSON lines (`load_run` reads them)."""
    return {
        "id": outcome.id,
        "half": outcome.half,
        "out_of_scope": outcome.out_of_scope,
        "facts_found": list(outcome.facts_found),
        "words": outcome.words,
    }


def run_eval(
    tutor: Tutor,
    questions: list[dict[str, Any]],
    out: Path,
    *,
    preset: str | None = None,
    retrieval: bool = True,
    progress: Callable[[int, int, str], None] | None = None,
) -> list[Outcome]:
    """Answer every question, write one JSON line each to `out`, and return how each went."""
    outcomes = []
    with out.open("w", encoding="utf-8") as handle:
        for number, item in enumerate(questions, start=1):
            if progress:
                progress(number, len(questions), str(item["id"]))
            history = [tuple(turn) for turn in item.get("history") or []]
            answer = tutor.ask(item["question"], history, preset=preset, retrieval=retrieval)
            phrase = item.get("source_phrase") if retrieval else None
            outcome = outcome_of(
                item,
                answer.answer,
                total_s=float(answer.timings["total_s"] or 0.0),
                first_token_s=answer.timings["first_token_s"],
                source_hit=source_hit(answer, phrase) if phrase else None,
                refused=answer.in_scope is False,
            )
            record = answer.to_dict()
            record.pop("prompt", None)
            record.update(outcome_record(outcome))
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            outcomes.append(outcome)
    return outcomes


def _percentile(values: list[float], q: float) -> float | None:
    """Linear between the two nearest values, so that p50 is the median of an even count too."""
    if not values:
        return None
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return round(ordered[low] + (ordered[high] - ordered[low]) * (position - low), 3)


def _rate(values: list[bool]) -> float | None:
    return round(sum(values) / len(values), 3) if values else None


def score(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    """The scores of some answered questions. Times and length are over the in-scope questions.

    Fact recall is given two ways: the share of all facts found (the project's figure so far), and
    the mean over questions of the share of each one's facts found (../shared/eval/README.md).
    """
    in_scope = [o for o in outcomes if not o.out_of_scope]
    found = [fact for o in in_scope for fact in o.facts_found]
    shares = [sum(o.facts_found) / len(o.facts_found) for o in in_scope if o.facts_found]
    hits = [o.source_hit for o in in_scope if o.source_hit is not None]
    flagged = [o.refused for o in outcomes if o.out_of_scope]
    first_token = [o.first_token_s for o in in_scope if o.first_token_s is not None]
    total = [o.total_s for o in in_scope]
    words = [o.words for o in in_scope]
    return {
        "questions": len(outcomes),
        "fact_recall": _rate(found),
        "facts": len(found),
        # ../shared/eval/README.md's definition: a question with five facts weighs as much as one with one.
        "fact_recall_per_question": round(statistics.fmean(shares), 3) if shares else None,
        "source_hit_rate": _rate(hits),
        "source_questions": len(hits),
        "out_of_scope_flagged": sum(flagged),
        "out_of_scope_questions": len(flagged),
        "in_scope_refused": sum(o.refused for o in in_scope),
        "in_scope_questions": len(in_scope),
        "first_token_p50_s": _percentile(first_token, 0.5),
        "first_token_p95_s": _percentile(first_token, 0.95),
        "answer_p50_s": _percentile(total, 0.5),
        "answer_p95_s": _percentile(total, 0.95),
        "answer_mean_s": round(statistics.fmean(total), 3) if total else None,
        "answer_words_p50": statistics.median(words) if words else None,
    }


def score_halves(outcomes: Sequence[Outcome]) -> dict[str, dict[str, Any]]:
    """Scores of each half that was answered, and of all answered questions when both were."""
    present = [half for half in HALVES if any(o.half == half for o in outcomes)]
    scores: dict[str, dict[str, Any]] = {half: score([o for o in outcomes if o.half == half]) for half in present}
    if len(present) != 1:
        scores["all"] = score(outcomes)
    return scores


def _number(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _rows(s: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        ("questions", str(s["questions"])),
        ("fact recall (facts)", f"{_number(s['fact_recall'], 3)} ({s['facts']})"),
        ("recall per question", _number(s["fact_recall_per_question"], 3)),
        ("source hit (questions)", f"{_number(s['source_hit_rate'], 3)} ({s['source_questions']})"),
        ("out of scope flagged", f"{s['out_of_scope_flagged']}/{s['out_of_scope_questions']}"),
        ("in scope refused", f"{s['in_scope_refused']}/{s['in_scope_questions']}"),
        ("first token p50 / p95 s", f"{_number(s['first_token_p50_s'], 2)} / {_number(s['first_token_p95_s'], 2)}"),
        ("answer p50 / p95 s", f"{_number(s['answer_p50_s'], 2)} / {_number(s['answer_p95_s'], 2)}"),
        ("answer words p50", "-" if s["answer_words_p50"] is None else f"{s['answer_words_p50']:g}"),
    ]


def format_scores(scores: dict[str, dict[str, Any]], title: str = "") -> str:
    """The scores of each half as a table: one line a figure, one column a half."""
    columns = list(scores)
    cells = {column: dict(_rows(scores[column])) for column in columns}
    rows = [(label, [cells[column][label] for column in columns]) for label, _ in _rows(scores[columns[0]])]
    return _table(title, columns, rows, label_width=24)


def _table(title: str, halves: Sequence[str], rows: Sequence[tuple[str, Sequence[str]]], *, label_width: int) -> str:
    """Lines of `label  cell cell …`, one column a half, under the halves' names, right-aligned."""
    width = max(12, *(len(cell) + 2 for _, cells in rows for cell in cells))
    lines = [title] if title else []
    lines.append(" " * label_width + "".join(f"{HALF_LABELS[half]:>{width}}" for half in halves))
    lines.extend(f"{label:{label_width}}" + "".join(f"{cell:>{width}}" for cell in cells) for label, cells in rows)
    return "\n".join(lines)


# --- Two runs of the same questions, compared ----------------------------------------------------


@dataclass(frozen=True)
class Answered:
    """One question as a run file (`tutor eval --out`) recorded it: what a comparison reads."""

    half: Half
    out_of_scope: bool  # as the question set labels it (runs written before 2026-12-05 lack it: in scope)
    facts: int
    words: int
    refused: bool
    answer: str


def load_run(path: Path) -> dict[tuple[str, str], Answered]:
    """The answers of a run file, or of every `*.jsonl` file in a folder, keyed by (file name, id):
    `make eval` writes one file a set, and ids are unique within a set only. A single file's name
    is left out of its keys, so that two files of one set compare whatever they are called."""
    files = sorted(path.glob("*.jsonl")) if path.is_dir() else [path]
    if not files:
        raise TutorError(f"{path}: no run files (*.jsonl) in this folder")
    run: dict[tuple[str, str], Answered] = {}
    for file in files:
        try:
            lines = file.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise TutorError(f"{file}: cannot be read ({exc})") from None
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            where = f"{file}:{number}"
            try:
                record = json.loads(line)
            except (ValueError, RecursionError) as exc:
                raise TutorError(f"{where}: not JSON ({str(exc)[:80]})") from None
            answered = _answered(record, where)
            key = (file.name if path.is_dir() else "", str(record["id"]))
            if key in run:
                raise TutorError(f"{where}: the id {key[1]!r} comes twice")
            run[key] = answered
    if not run:
        raise TutorError(f"{path}: no answers in it")
    return run


def _answered(record: Any, where: str) -> Answered:
    """One line of a run, its fields checked for their types: a run is read, never trusted."""
    if not isinstance(record, dict) or not isinstance(record.get("id"), str | int) or isinstance(record["id"], bool):
        raise TutorError(f"{where}: not a line of `tutor eval --out` (no id)")
    facts, words, answer = record.get("facts_found"), record.get("words"), record.get("answer")
    if not isinstance(facts, list) or not all(isinstance(found, bool) for found in facts):
        raise TutorError(f"{where}: 'facts_found' must be a list of true and false")
    if not isinstance(words, int) or isinstance(words, bool) or words < 0:
        raise TutorError(f"{where}: 'words' must be a whole number")
    if not isinstance(answer, str):
        raise TutorError(f"{where}: 'answer' must be text")
    return Answered(
        half=half_of(record["id"]),
        out_of_scope=record.get("out_of_scope") is True,
        facts=sum(facts),
        words=words,
        refused=record.get("in_scope") is False,
        answer=answer,
    )


def sign_test(gained: int, lost: int) -> float:
    """Two-sided exact sign test: the chance of a split at least this uneven if a change moved
    answers up and down alike. Questions that did not move say nothing and are left out."""
    moved = gained + lost
    if not moved:
        return 1.0
    tail = sum(math.comb(moved, k) for k in range(min(gained, lost) + 1)) / 2**moved
    return min(1.0, 2 * tail)


def compare_runs(before: dict[tuple[str, str], Answered], after: dict[tuple[str, str], Answered]) -> dict[str, Any]:
    """Each half's facts before and after, the questions that gained and lost facts (with the sign
    test's p), scope decisions changed and, over the questions in scope (labelled so in either
    run), the answers left word for word the same and the median words; "all" where both halves
    are there. A question that finds one fact more and another less counts as neither.

    Two runs of the same code differ by a few facts (greedy decoding sums in another order when the
    model's cache holds something else), so a gain of two or three facts on a half of about 150
    questions is no gain; the count of questions that moved each way says more than the total."""
    shared = sorted(before.keys() & after.keys())
    present = [half for half in HALVES if any(before[key].half == half for key in shared)]
    halves: dict[str, dict[str, Any]] = {}
    for half in present + (["all"] if len(present) > 1 else []):
        keys = [key for key in shared if half in ("all", before[key].half)]
        in_scope = [key for key in keys if not (before[key].out_of_scope or after[key].out_of_scope)]
        gained = sum(after[key].facts > before[key].facts for key in keys)
        lost = sum(after[key].facts < before[key].facts for key in keys)
        halves[half] = {
            "questions": len(keys),
            "facts_before": sum(before[key].facts for key in keys),
            "facts_after": sum(after[key].facts for key in keys),
            "gained": gained,
            "lost": lost,
            "sign_test_p": sign_test(gained, lost),
            "scope_changed": sum(before[key].refused != after[key].refused for key in keys),
            "in_scope": len(in_scope),
            "unchanged_answers": sum(before[key].answer == after[key].answer for key in in_scope),
            "words_before": statistics.median(before[key].words for key in in_scope) if in_scope else None,
            "words_after": statistics.median(after[key].words for key in in_scope) if in_scope else None,
        }
    sets = sorted({name for name, _ in shared})
    by_set = {
        name: (
            sum(before[key].facts for key in shared if key[0] == name),
            sum(after[key].facts for key in shared if key[0] == name),
        )
        for name in sets
    }
    return {
        "halves": halves,
        "by_set": by_set,
        "before_only": len(before.keys() - after.keys()),
        "after_only": len(after.keys() - before.keys()),
    }


def _words(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def format_comparison(compared: dict[str, Any], title: str = "") -> str:
    """A comparison as a table, one column a half, then each set's facts before and after."""
    halves = compared["halves"]
    rows = {
        "questions in both": lambda h: str(h["questions"]),
        "facts found": lambda h: f"{h['facts_before']} -> {h['facts_after']}",
        "questions gained / lost": lambda h: f"{h['gained']} / {h['lost']}",
        "sign test p": lambda h: "<0.001" if h["sign_test_p"] < 0.001 else f"{h['sign_test_p']:.3f}",
        "scope decisions changed": lambda h: str(h["scope_changed"]),
        "same answer, in scope": lambda h: f"{h['unchanged_answers']}/{h['in_scope']}",
        "answer words p50": lambda h: f"{_words(h['words_before'])} -> {_words(h['words_after'])}",
    }
    table = [(label, [cell(h) for h in halves.values()]) for label, cell in rows.items()]
    lines = [_table(title, list(halves), table, label_width=26)]
    if len(compared["by_set"]) > 1:
        lines.append("facts found, each file:")
        lines.extend(f"  {name:32} {a:4} -> {b}" for name, (a, b) in compared["by_set"].items())
    if compared["before_only"] or compared["after_only"]:
        lines.append(
            f"left out: {compared['before_only']} answers in the first run only, "
            f"{compared['after_only']} in the second only (another half, or another set?)"
        )
    return "\n".join(lines)
