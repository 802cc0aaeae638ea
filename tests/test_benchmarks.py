"""The scale benchmark runs end to end on a small synthetic index, the prefill one on the guides'
index: a benchmark nobody runs in CI breaks silently when the code under it changes (bench_core
once read a retriever attribute that the one-vector-path change removed). Their figures are not
asserted; that they are printed is."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_benchmark(*args: str, index: Path | None = None) -> str:
    """A benchmark script's printed figures (its exit status checked), on `index` where given."""
    env = {**os.environ, "TUTOR_INDEX_DIR": str(index)} if index else None
    result = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=600, cwd=ROOT, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@pytest.mark.slow
def test_bench_scale_measures_a_small_synthetic_index_and_an_ingest(tmp_path: Path) -> None:
    out = run_benchmark(
        "benchmarks/bench_scale.py", "--chunks", "150", "--ingest-chunks", "30", "--work", str(tmp_path)
    )
    chunks = re.search(r"^chunks\s+(\d+)\s+(\d+)", out, re.MULTILINE)
    assert chunks and int(chunks[1]) > 0 and int(chunks[2]) >= 100, out  # whole synthetic guides of ~15 chunks
    for label in ("load (s)", "first search (ms)", "search p50 (ms)", "search p95 (ms)", "replica memory (MB)"):
        assert re.search(rf"^{re.escape(label)}\s+[\d.]+\s+[\d.]+\s+[\d.]+x$", out, re.MULTILINE), (label, out)
    ingest = re.search(r"ingest of (\d+) chunks: ([\d.]+) chunks/s", out)
    assert ingest and int(ingest[1]) >= 25 and float(ingest[2]) > 0, out


@pytest.mark.slow
def test_bench_prefill_times_both_kernels_on_the_tutors_prompts(corpus_index: Path) -> None:
    out = run_benchmark("benchmarks/bench_prefill.py", "--questions", "2", "--rounds", "1", index=corpus_index)
    assert re.search(r"^model: \S+; \d+ prompts, p50 \d+ tokens prefilled", out, re.MULTILINE), out
    for label in ("prefill p50 (s)", "prefill slowest (s)", "decoding (ms a token)"):
        assert re.search(rf"^{re.escape(label)}\s+[\d.]+\s+[\d.]+\s+[\d.]+$", out, re.MULTILINE), (label, out)


@pytest.mark.slow
def test_bench_plain_loop_answers_with_the_tutor_and_the_plain_loop(corpus_index: Path, tmp_path: Path) -> None:
    """Both loops answer the same questions with the real model, a question asked mid-conversation
    among them; each run is written as `tutor eval --out` writes it, scored, and compared question
    by question."""
    sets = ["eval/questions.jsonl", "eval/conversation_questions.jsonl"]
    limits = ["--half", "tune", "--limit", "1", "--out", str(tmp_path / "runs")]
    out = run_benchmark("benchmarks/bench_plain_loop.py", *sets, *limits, index=corpus_index)
    assert re.search(
        r"^sets: questions, conversation_questions \(half: tune\).*plain loop: \d+ chunks of 800 characters, top 4$",
        out,
        re.MULTILINE,
    ), out
    assert out.count("fact recall (facts)") == 2 and "plain loop -> tutor" in out, out
    assert re.search(r"^questions in both\s+2\b", out, re.MULTILINE), out
    for run in ("tutor", "plain"):
        for name in ("questions", "conversation_questions"):
            lines = (tmp_path / "runs" / run / f"{name}.jsonl").read_text().splitlines()
            assert len(lines) == 1 and json.loads(lines[0])["answer"].strip(), (run, name, lines)
