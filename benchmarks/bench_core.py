"""Core benchmark: each figure beside its raw baseline, measured in the same run.

    python benchmarks/bench_core.py [--questions N]

- retrieval: Retriever.search (embed + Chroma + BM25 + fusion) vs embed + raw Chroma query, warm and
  on the first pass (where, with TUTOR_SENTENCE_WEIGHT set, each leader's sentence vectors are made)
- first token: the tutor's time to first token vs raw llama-cpp-python prefill of the same prompt,
  both from the same KV-cache state (the system prompt cached, as in a warm server)
- answer time: p50/p95 of whole answers
- mid-conversation first token: the project's in-scope follow-ups with their history, against raw
  prefill of the same prompt (history included) from the same cache state
- the scope judgement: first token of questions whose scope the cosine check is unsure of (their
  best passage under scope_judge_below), with the judgement and without it
- ingest: full ingest throughput vs raw sentence-transformers encode of the same chunks
- no-op re-ingest time vs the full ingest
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tutor import Tutor

ROOT = Path(__file__).resolve().parents[1]


def p50(values: Sequence[float]) -> float:
    return statistics.median(values)


def p95(values: Sequence[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def own_in_scope(root: Path) -> list[dict]:
    """In-scope questions of the project's own sets, first questions and those asked with history."""
    questions = []
    for name in ("questions.jsonl", "staff_questions.jsonl"):
        lines = (root / "eval" / name).read_text().splitlines()
        questions += [q for q in map(json.loads, lines) if not q.get("out_of_scope")]
    return questions


def band_candidates(root: Path) -> list[dict]:
    """In-scope first questions of the project's own sets."""
    return [q for q in own_in_scope(root) if not q.get("history")]


def follow_ups(root: Path) -> list[tuple[str, list[tuple[str, str]]]]:
    """In-scope questions of the project's own sets asked with history, with it."""
    return [(q["question"], [tuple(turn) for turn in q["history"]]) for q in own_in_scope(root) if q.get("history")]


Timings = tuple[list[float], list[float], list[float], list[int]]


def time_answers(tutor: Tutor, asked: Sequence[tuple[str, list[tuple[str, str]]]]) -> Timings:
    """First token, raw prefill of the same prompt from the same cache state, whole answer time
    and prompt tokens, for each question answered (not refused)."""
    llm = tutor.chat._llm  # type: ignore[attr-defined]
    first_token: list[float] = []
    prefill: list[float] = []
    total: list[float] = []
    prompt_tokens: list[int] = []
    for question, history in asked:
        tutor.embedder.clear_cache()  # no vector of this question kept: as a server meets it first
        tutor.warm_up()
        answer = tutor.ask(question, history)
        first_token_s, total_s = answer.timings["first_token_s"], answer.timings["total_s"]
        if first_token_s is None or total_s is None:
            continue
        first_token.append(first_token_s)
        total.append(total_s)
        tokens = tutor.chat._prompt_tokens(list(answer.prompt))  # type: ignore[attr-defined]
        tutor.warm_up()
        started = time.perf_counter()
        for _ in llm.generate(tokens, temp=0.0):
            break
        prefill.append(time.perf_counter() - started)
        prompt_tokens.append(sum(tutor.chat.count_tokens(m["content"]) for m in answer.prompt))
    return first_token, prefill, total, prompt_tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--questions",
        type=int,
        default=12,
        help="In-scope questions to time of each kind (first questions of eval/questions.jsonl; "
        "questions with history of it and eval/staff_questions.jsonl; the judged band).",
    )
    args = parser.parse_args()

    from tutor import build_embedder, build_tutor, load_settings
    from tutor.corpus import find_guide_files, read_guide
    from tutor.factory import ingest_from_settings
    from tutor.index import guide_chunks

    settings = load_settings()
    embedder = build_embedder(settings)
    embedder.embed_one("warm up")
    workdir = Path(tempfile.mkdtemp(prefix="tutor-bench-"))

    # Ingest: full, then no-op, against raw encoding of the same chunk texts.
    index_settings = load_settings(index_dir=workdir / "index", corpus_dir=ROOT / "corpus")
    started = time.perf_counter()
    report = ingest_from_settings(index_settings, embedder=embedder)
    full_s = time.perf_counter() - started
    started = time.perf_counter()
    noop = ingest_from_settings(index_settings, embedder=embedder)
    noop_s = time.perf_counter() - started
    assert noop.noop and noop.chunks_embedded == 0
    texts = [
        c.embed_text
        for p in find_guide_files([ROOT / "corpus"])
        for c in guide_chunks(read_guide(p), settings.chunk_size, settings.chunk_overlap)
    ]
    started = time.perf_counter()
    embedder._load().encode(texts, batch_size=32, normalize_embeddings=True)
    raw_encode_s = time.perf_counter() - started

    tutor = build_tutor(load_settings(index_dir=workdir / "index"))
    retriever = tutor.retriever
    assert retriever is not None
    questions = [json.loads(line) for line in (ROOT / "eval" / "questions.jsonl").read_text().splitlines()]
    questions = [q for q in questions if not q.get("out_of_scope") and not q.get("history")][: args.questions]

    # Retrieval against a raw Chroma query of the same embedded question; the correction of the
    # question's slips before it (as the tutor does) against the search.
    ours, raw, spelled = [], [], []
    for _ in range(3):
        for q in questions:
            started = time.perf_counter()
            query = retriever.corrected(q["question"])
            spelled.append(time.perf_counter() - started)
            started = time.perf_counter()
            retriever.search(query, 8)
            ours.append(time.perf_counter() - started)
            started = time.perf_counter()
            vector = embedder.embed_one(q["question"])
            retriever.collection.query(query_embeddings=[vector], n_results=8)
            raw.append(time.perf_counter() - started)
    retrieval = (p50(ours), p50(raw))
    first_pass = (p50(ours[: len(questions)]), p50(raw[: len(questions)]))  # sentence vectors made here

    # First token and answer time, against raw prefill of the very same prompt.
    first_token, prefill, total, prompt_tokens = time_answers(tutor, [(q["question"], []) for q in questions])
    # Mid-conversation: the history is prefilled too, and a follow-up may be searched more than
    # once and judged before the model answers.
    mid = time_answers(tutor, follow_ups(ROOT)[: args.questions])

    # The scope judgement: only questions the cosine check is unsure of pay for it (one model call,
    # aside from the cached conversation); timed with it and without it. One the cosine check
    # refuses outright is not answered either way, so not timed.
    in_band = [q["question"] for q in band_candidates(ROOT) if tutor.scope_is_unsure(q["question"])][: args.questions]
    judged: list[float] = []
    unjudged: list[float] = []
    settings_judged = tutor.settings
    settings_unjudged = settings_judged.model_copy(update={"scope_judge_below": 0.0})
    for question in in_band:
        pair: list[float | None] = []
        for settings_now in (settings_judged, settings_unjudged):
            tutor.settings = settings_now
            tutor.embedder.clear_cache()
            tutor.warm_up()
            answer = tutor.ask(question)
            pair.append(answer.timings["first_token_s"] if answer.in_scope else None)
        with_judge, without = pair
        if with_judge is not None and without is not None:  # one the model calls off-topic is not timed
            judged.append(with_judge)
            unjudged.append(without)
    tutor.settings = settings_judged

    rows = [
        ("retrieval p50 (ms)", retrieval[0] * 1000, "raw Chroma query + embed", retrieval[1] * 1000),
        ("retrieval p50, first pass (ms)", first_pass[0] * 1000, "raw Chroma query + embed", first_pass[1] * 1000),
        ("spelling correction p50 (ms)", p50(spelled) * 1000, "the tutor's own search", retrieval[0] * 1000),
        ("first token p50 (s)", p50(first_token), "raw llama.cpp prefill, same prompt", p50(prefill)),
        ("first token p95 (s)", p95(first_token), "raw llama.cpp prefill, same prompt", p95(prefill)),
        ("answer p50 (s)", p50(total), "its own first token", p50(first_token)),
        ("answer p95 (s)", p95(total), "its own first token", p95(first_token)),
        (
            "ingest (chunks/s)",
            report.chunks_total / full_s,
            "raw sentence-transformers encode",
            len(texts) / raw_encode_s,
        ),
        ("no-op re-ingest (s)", noop_s, "full ingest", full_s),
    ]
    if mid[0]:
        mid_first_token, mid_prefill = p50(mid[0]), p50(mid[1])
        rows.append(
            (
                "first token p50, mid-conversation (s)",
                mid_first_token,
                "raw llama.cpp prefill, same prompt",
                mid_prefill,
            )
        )
    if judged:
        rows.append(("first token p50, judged (s)", p50(judged), "the same questions, not judged", p50(unjudged)))
    print(
        f"model: {tutor.chat.name}; corpus: {report.chunks_total} chunks; {len(first_token)} questions; "
        f"prompt p50 {p50(prompt_tokens):.0f} tokens (system prompt cached); "
        f"{len(judged)} of the sets' in-scope questions in the judged band; "
        f"{len(mid[0])} follow-ups, prompt p50 {p50(mid[3]) if mid[3] else 0:.0f} tokens"
    )
    print(f"{'figure':24} {'tutor':>10}  {'baseline':>10}  {'ratio':>6}  baseline is")
    for name, value, baseline_name, baseline in rows:
        print(f"{name:24} {value:10.3f}  {baseline:10.3f}  {value / baseline:6.2f}  {baseline_name}")


if __name__ == "__main__":
    main()
