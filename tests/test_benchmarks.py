"""The scale benchmark runs end to end on a small synthetic index, the prefill one on the guides'
index: a benchmark nobody runs in CI breaks silently when the code under it changes (bench_core
once read a retriever attribute that the one-vector-path change removed). Their figures are not
asserted; that they are printed is."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_bench_scale_measures_a_small_synthetic_index_and_an_ingest(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "benchmarks/bench_scale.py", "--chunks", "150", "--ingest-chunks", "30"]
        + ["--work", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    chunks = re.search(r"^chunks\s+(\d+)\s+(\d+)", out, re.MULTILINE)
    assert chunks and int(chunks[1]) > 0 and int(chunks[2]) >= 100, out  # whole synthetic guides of ~15 chunks
    for label in ("load (s)", "first search (ms)", "search p50 (ms)", "search p95 (ms)", "replica memory (MB)"):
        assert re.search(rf"^{re.escape(label)}\s+[\d.]+\s+[\d.]+\s+[\d.]+x$", out, re.MULTILINE), (label, out)
    ingest = re.search(r"ingest of (\d+) chunks: ([\d.]+) chunks/s", out)
    assert ingest and int(ingest[1]) >= 25 and float(ingest[2]) > 0, out


@pytest.mark.slow
def test_bench_prefill_times_both_kernels_on_the_tutors_prompts(corpus_index: Path) -> None:
    result = subprocess.run(
        [sys.executable, "benchmarks/bench_prefill.py", "--questions", "2", "--rounds", "1"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        env={**os.environ, "TUTOR_INDEX_DIR": str(corpus_index)},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    assert re.search(r"^model: \S+; \d+ prompts, p50 \d+ tokens prefilled", out, re.MULTILINE), out
    for label in ("prefill p50 (s)", "prefill slowest (s)", "decoding (ms a token)"):
        assert re.search(rf"^{re.escape(label)}\s+[\d.]+\s+[\d.]+\s+[\d.]+$", out, re.MULTILINE), (label, out)
