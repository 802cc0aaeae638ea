"""Plain-loop benchmark: the tutor against a plain RAG loop on the same questions, same model.

    python benchmarks/bench_plain_loop.py FILE [FILE ...] [--half tune|holdout|all] [--limit N] [--out DIR]

The baseline the outside check measured the tutor against: the guides split by LangChain's
RecursiveCharacterTextSplitter (800 characters, 100 shared), embedded by the tutor's embedder
into a Chroma collection of its own, the four nearest chunks put in one prompt ("Use the context
to answer"), earlier turns as chat messages, the answer greedy and as long as the tutor's. It
never refuses. Both answer every question with the same chat model: the tutor first, as `tutor
eval` would (attribution off), then the loop, so the tutor's answers are `tutor eval`'s. Both are
scored by `tutor eval`'s own measures, and the questions each gained over the other are counted
(sign test). With --out, each run is written as `tutor eval --out` would, one file a set.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

PLAIN_SYSTEM = "Use the following context to answer the question.\n\nContext:\n{context}"
PLAIN_CHUNK, PLAIN_OVERLAP, PLAIN_K = 800, 100, 4


class PlainLoop:
    """The baseline: split, embed, the nearest four, one prompt."""

    def __init__(self, corpus_dir: Path, embedder: Any, llm: Any, max_tokens: int) -> None:
        import chromadb
        from chromadb.config import Settings as ChromaSettings
        from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
        from langchain_text_splitters import RecursiveCharacterTextSplitter

        splitter = RecursiveCharacterTextSplitter(chunk_size=PLAIN_CHUNK, chunk_overlap=PLAIN_OVERLAP)
        chunks = [c for path in sorted(corpus_dir.glob("*.md")) for c in splitter.split_text(path.read_text())]
        self.collection = chromadb.EphemeralClient(ChromaSettings(anonymized_telemetry=False)).create_collection(
            f"plain-{time.monotonic_ns()}", configuration={"hnsw": {"space": "cosine"}}
        )
        vectors = embedder.embed(chunks)
        self.collection.add(
            ids=[str(i) for i in range(len(chunks))],
            documents=chunks,
            embeddings=np.asarray(vectors, dtype=np.float32),
        )
        self.prompt = ChatPromptTemplate.from_messages(
            [("system", PLAIN_SYSTEM), MessagesPlaceholder("history"), ("human", "{question}")]
        )
        self.embedder, self.llm, self.max_tokens, self.chunk_count = embedder, llm, max_tokens, len(chunks)

    def answer(self, question: str, history: list[tuple[str, str]]) -> str:
        found = self.collection.query(
            query_embeddings=[np.asarray(self.embedder.embed_one(question), dtype=np.float32).tolist()],
            n_results=PLAIN_K,
        )
        turns = [message for user, assistant in history for message in (("human", user), ("ai", assistant))]
        messages = self.prompt.format_messages(
            context="\n\n".join((found["documents"] or [[]])[0]), history=turns, question=question
        )
        roles = {"system": "system", "human": "user", "ai": "assistant"}
        self.llm.reset()  # from an empty cache: each answer the same whatever came before it
        reply = self.llm.create_chat_completion(
            messages=[{"role": roles[m.type], "content": m.content} for m in messages],
            max_tokens=self.max_tokens,
            temperature=0.0,
        )
        return str(reply["choices"][0]["message"]["content"] or "").strip()


def run_plain(loop: PlainLoop, questions: list[dict[str, Any]], out: Path) -> list[Any]:
    """Answer every question with the plain loop, written and scored as `run_eval` does."""
    from tutor.evaluate import outcome_of, outcome_record

    outcomes = []
    with out.open("w", encoding="utf-8") as handle:
        for item in questions:
            started = time.perf_counter()
            answer = loop.answer(item["question"], [tuple(turn) for turn in item.get("history") or []])
            outcome = outcome_of(item, answer, total_s=time.perf_counter() - started)
            record = {"question": item["question"], "answer": answer, **outcome_record(outcome)}
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            outcomes.append(outcome)
    return outcomes


def positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError("a whole number from 1")
    return int(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path, help="Question sets (JSON lines, tutor eval's format).")
    parser.add_argument("--half", choices=["tune", "holdout", "all"], default="all", help="Which half of each set.")
    parser.add_argument("--limit", type=positive, default=None, help="Only the first N questions of each set's half.")
    parser.add_argument("--out", type=Path, default=None, help="Folder for both runs' answers (tutor/, plain/).")
    args = parser.parse_args()

    from tutor import build_tutor, load_settings
    from tutor.evaluate import (
        compare_runs,
        format_comparison,
        format_scores,
        load_questions,
        load_run,
        run_eval,
        score_halves,
        select_half,
    )

    if len({path.stem for path in args.files}) < len(args.files):
        parser.error("two question sets of the same file name: their answers would share one file")
    if args.out and any(args.out.glob("*/*.jsonl")):
        parser.error(f"{args.out} holds answers already: name a new folder")
    settings = load_settings(attribution="off")
    tutor = build_tutor(settings)
    llm = getattr(tutor.chat, "_llm", None)
    if llm is None:
        raise SystemExit("the plain loop runs the in-process model: unset TUTOR_LLM_URL")
    out = args.out or Path(tempfile.mkdtemp(prefix="bench_plain_loop-"))
    sets = {path.stem: select_half(load_questions(path), args.half)[: args.limit] for path in args.files}
    (out / "tutor").mkdir(parents=True, exist_ok=True)
    (out / "plain").mkdir(exist_ok=True)
    tutor_outcomes, plain_outcomes = [], []
    for name, questions in sets.items():  # the tutor first, as `tutor eval` runs it
        tutor_outcomes += run_eval(tutor, questions, out / "tutor" / f"{name}.jsonl")
    loop = PlainLoop(settings.corpus_dir, tutor.embedder, llm, settings.max_answer_tokens)
    for name, questions in sets.items():
        plain_outcomes += run_plain(loop, questions, out / "plain" / f"{name}.jsonl")

    print(
        f"sets: {', '.join(sets)} (half: {args.half}); model: {tutor.chat.name}; embedder: "
        f"{tutor.embedder.model_id}; plain loop: {loop.chunk_count} chunks of {PLAIN_CHUNK} characters, top {PLAIN_K}"
    )
    print(format_scores(score_halves(plain_outcomes), "plain loop (never refuses; no first token timed)"))
    print(format_scores(score_halves(tutor_outcomes), "tutor"))
    print(format_comparison(compare_runs(load_run(out / "plain"), load_run(out / "tutor")), "plain loop -> tutor"))
    print(f"answers: {out}")


if __name__ == "__main__":
    main()
