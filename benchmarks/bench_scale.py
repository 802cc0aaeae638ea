"""Scale benchmark: a replica on 100,000 chunks against one on the 44-chunk corpus, and ingest.

    python benchmarks/bench_scale.py [--chunks 100000] [--ingest-chunks 5000] [--work DIR]

- load: seconds for a replica to open the current index version (a Retriever), its first search,
  and the memory it adds (RSS), each replica in a fresh process;
- search: p50/p95 of Retriever.search (the question embedded, ranked, fused) over the eval questions;
- ingest: `tutor.index.ingest` of synthetic guides, really embedded, against a raw
  sentence-transformers encode of the same chunk texts in the same run.

The large index is synthetic: guides written from the corpus's own words, chunked and stored by
the real ingest, with random unit vectors in place of embeddings (embedding 100,000 chunks would
take an hour on 2 cores; search costs the same whatever the vectors say). It is kept in --work
and reused by the next run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CHUNKS_PER_GUIDE = 100


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def synthetic_guides(count: int, chunk_size: int, seed: int, sections: int = CHUNKS_PER_GUIDE // 5) -> list:
    """Guides of about five chunks a section, from the corpus's words."""
    from tutor.corpus import Guide

    words = sorted(
        set(re.findall(r"[A-Za-z][a-z]{2,}", " ".join(p.read_text() for p in (ROOT / "corpus").glob("*.md"))))
    )
    rng = random.Random(seed)
    guides = []
    for number in range(count):
        parts = []
        for section in range(sections):
            paragraphs = [
                " ".join(rng.choice(words) for _ in range(chunk_size // 10)).capitalize() + "." for _ in range(5)
            ]
            parts.append(f"## Section {section}\n\n" + "\n\n".join(paragraphs))
        text = f"# Synthetic guide {number}\n\n" + "\n\n".join(parts)
        guides.append(
            Guide(
                path=f"synthetic/guide-{seed}-{number:05d}.md",
                title=f"Synthetic guide {number}",
                text=text,
                sha256=hashlib.sha256(text.encode()).hexdigest(),
            )
        )
    return guides


class RandomVectors:
    """Stands in for the embedder when the large index is built: unit vectors, no model."""

    def __init__(self, dimensions: int) -> None:
        self.rng = np.random.default_rng(0)
        self.dimensions = dimensions
        self.model_id = f"synthetic-random-{dimensions}"  # a kept index of other dimensions is built again

    def embed(self, texts: list[str], progress: bool = False) -> np.ndarray:
        vectors = self.rng.standard_normal((len(texts), self.dimensions)).astype(np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def build_large(folder: Path, chunks: int) -> float:
    """The synthetic index in `folder` (kept between runs); returns the seconds the build took."""
    from tutor import FolderStore, build_embedder, load_settings
    from tutor.index import ingest

    settings = load_settings()
    random_vectors: Any = RandomVectors(build_embedder(settings).dimensions)  # stands in for the Embedder
    store = FolderStore(folder)
    manifest = store.read_manifest()
    if manifest and manifest["chunks"] >= chunks and manifest["settings"]["embed_model"] == random_vectors.model_id:
        return 0.0
    started = time.perf_counter()
    guides = synthetic_guides(chunks // CHUNKS_PER_GUIDE, settings.chunk_size, seed=1)
    ingest(guides, store, embedder=random_vectors, chunk_size=settings.chunk_size, chunk_overlap=settings.chunk_overlap)
    return time.perf_counter() - started


def replica(index_dir: Path) -> dict[str, float]:
    """Run in a child process: open the index as a replica does and search it."""
    import chromadb  # noqa: F401  (imported before timing: its import is the same for any index)

    from tutor import FolderStore, Retriever, build_embedder, load_settings

    embedder = build_embedder(load_settings())
    embedder.embed_one("warm up")
    questions = [json.loads(line)["question"] for line in (ROOT / "eval" / "questions.jsonl").read_text().splitlines()]
    before = rss_mb()
    started = time.perf_counter()
    retriever = Retriever(FolderStore(index_dir), embedder=embedder)
    load_s = time.perf_counter() - started
    started = time.perf_counter()
    retriever.search(questions[0], 16)
    first_s = time.perf_counter() - started
    times = []
    for question in questions[1:]:
        started = time.perf_counter()
        retriever.search(question, 16)
        times.append(time.perf_counter() - started)
    return {
        "chunks": retriever.chunk_count,
        "load_s": load_s,
        "first_search_s": first_s,
        "search_p50_s": statistics.median(times),
        "search_p95_s": p95(times),
        "rss_added_mb": rss_mb() - before,
    }


def measure_replica(index_dir: Path) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--replica", str(index_dir)], check=True, capture_output=True, text=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def write_guide_files(folder: Path, chunks: int, chunk_size: int) -> None:
    """Markdown files shaped like a real collection: front matter, nested headings, ~15 chunks each."""
    folder.mkdir(parents=True, exist_ok=True)
    for number, guide in enumerate(synthetic_guides(max(1, chunks // 15), chunk_size, seed=2, sections=3)):
        front = f"---\ntitle: {guide.title}\nsource: synthetic\n---\n"
        (folder / f"guide-{number:05d}.md").write_text(front + guide.text.replace("## Section 1", "### Section 1"))


def ingest_throughput(folder: Path, chunks: int) -> dict[str, float]:
    """Ingest as `tutor ingest` does (files read, chunked, embedded, stored) vs raw encode."""
    import shutil

    from tutor import build_embedder, load_settings
    from tutor.corpus import read_guides
    from tutor.embed import BATCH_SIZE
    from tutor.factory import ingest_from_settings
    from tutor.index import guide_chunks

    settings = load_settings(index_dir=folder / "index", corpus_dir=folder / "guides")
    shutil.rmtree(folder, ignore_errors=True)
    write_guide_files(folder / "guides", chunks, settings.chunk_size)
    embedder = build_embedder(settings)
    embedder.embed_one("warm up")
    import chromadb  # noqa: F401  (a one-off import, not throughput)

    started = time.perf_counter()
    report = ingest_from_settings(settings, embedder=embedder)
    ingest_s = time.perf_counter() - started
    chunked = [
        c
        for g in read_guides([folder / "guides"])
        for c in guide_chunks(g, settings.chunk_size, settings.chunk_overlap)
    ]
    model = embedder._load()
    rates = {}
    # sentence-transformers' default batch (32), and the ingest's own (BATCH_SIZE), which is
    # what is left when the encoder's setting is taken out: reading, chunking, words, Chroma.
    embedded = [c.embed_text for c in chunked]
    for name, texts, batch in (
        ("raw_text", [c.text for c in chunked], 32),
        ("raw_embed_text", embedded, 32),
        ("raw_embed_text_same_batch", embedded, BATCH_SIZE),
    ):
        started = time.perf_counter()
        model.encode(texts, batch_size=batch, normalize_embeddings=True)
        rates[name] = len(texts) / (time.perf_counter() - started)
    shutil.rmtree(folder, ignore_errors=True)
    return {"chunks": report.chunks_embedded, "ingest_per_s": report.chunks_embedded / ingest_s, **rates}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=100_000, help="Chunks in the synthetic index.")
    parser.add_argument(
        "--ingest-chunks", type=int, default=5_000, help="Chunks embedded for the ingest figure (0: skip)."
    )
    parser.add_argument(
        "--work", type=Path, default=Path("/tmp/tutor-bench-scale"), help="Where the synthetic index is kept."
    )
    parser.add_argument("--replica", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.replica:
        print(json.dumps(replica(args.replica)))
        return

    from tutor import load_settings
    from tutor.factory import ingest_from_settings

    small_dir = args.work / "small"
    ingest_from_settings(load_settings(index_dir=small_dir, corpus_dir=ROOT / "corpus"))
    build_s = build_large(args.work / f"large-{args.chunks}", args.chunks)
    small = measure_replica(small_dir)
    large = measure_replica(args.work / f"large-{args.chunks}")
    print(f"{'figure':<22}{'44-chunk corpus':>18}{'synthetic':>14}{'ratio':>9}")
    print(f"{'chunks':<22}{small['chunks']:>18.0f}{large['chunks']:>14.0f}{large['chunks'] / small['chunks']:>9.0f}")
    for key, label, unit in (
        ("load_s", "load (s)", 1),
        ("first_search_s", "first search (ms)", 1000),
        ("search_p50_s", "search p50 (ms)", 1000),
        ("search_p95_s", "search p95 (ms)", 1000),
        ("rss_added_mb", "replica memory (MB)", 1),
    ):
        ratio = large[key] / small[key] if small[key] > 0 else float("nan")
        print(f"{label:<22}{small[key] * unit:>18.1f}{large[key] * unit:>14.1f}{ratio:>8.1f}x")
    if build_s:
        print(f"synthetic index built in {build_s:.0f} s (chunked and stored by the real ingest, random vectors)")
    if args.ingest_chunks:
        figures = ingest_throughput(args.work / "ingest", args.ingest_chunks)
        print(
            f"ingest of {figures['chunks']:.0f} chunks: {figures['ingest_per_s']:.1f} chunks/s; raw "
            f"sentence-transformers encode of the chunk texts {figures['raw_text']:.1f}/s "
            f"({figures['ingest_per_s'] / figures['raw_text']:.2f}x), of the texts embedded (title and "
            f"section in front) {figures['raw_embed_text']:.1f}/s "
            f"({figures['ingest_per_s'] / figures['raw_embed_text']:.2f}x); the latter in the "
            f"ingest's own batch size {figures['raw_embed_text_same_batch']:.1f}/s "
            f"({figures['ingest_per_s'] / figures['raw_embed_text_same_batch']:.2f}x)"
        )


if __name__ == "__main__":
    main()
