"""Faults: `tutor ingest` killed with SIGKILL at random moments, twenty times in a row. After every
kill the index holds exactly the chunks of one complete corpus version (none missing, none twice)
and answers a search; the next ingest finishes what was left."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tutor import IndexStore, Retriever
from tutor.corpus import read_guides
from tutor.embed import Embedder
from tutor.index import chunk_guide

from .conftest import CORPUS

KILLS = 20


def _expected_ids(manifest: dict[str, object], versions: dict[str, set[str]]) -> set[str]:
    files = manifest["files"]
    assert isinstance(files, dict)
    return set().union(*(versions[sha] for sha in files.values()))


def test_ingest_killed_at_random_points_never_breaks_the_index(
    tmp_path: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # guide paths (and so chunk ids) as the CLI below sees them
    guides = tmp_path / "guides"
    shutil.copytree(CORPUS, guides)
    names = sorted(p.name for p in guides.glob("*.md"))
    originals = {name: (guides / name).read_text() for name in names}
    environment = {k: v for k, v in os.environ.items() if not k.startswith("TUTOR_")}
    environment |= {"TUTOR_INDEX_DIR": str(tmp_path / "index"), "TUTOR_CORPUS_DIR": str(guides)}
    command = [sys.executable, "-c", "from tutor.cli import main; main()", "ingest"]
    store = IndexStore(tmp_path / "index")
    versions: dict[str, set[str]] = {}  # file sha -> the chunk ids of that version of the guide
    rng = random.Random(20261123)
    outcomes = {"killed": 0, "killed mid-ingest": 0, "finished": 0}

    def remember_versions() -> None:
        for guide in read_guides([guides]):
            versions[guide.sha256] = {c.id for c in chunk_guide(guide, 400, 60)}

    for run in range(KILLS):
        # Each run has work to do: one guide changed, one removed or restored.
        changed = names[run % len(names)]
        (guides / changed).write_text(originals[changed] + f"\n\n## Revision {run}\n\nRevision {run} of this guide.\n")
        dropped = names[(run + 2) % len(names)]
        if run % 3 == 0 and (guides / dropped).exists():
            (guides / dropped).unlink()
        else:
            (guides / dropped).write_text(originals[dropped])
        remember_versions()
        process = subprocess.Popen(
            command, env=environment, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        time.sleep(rng.uniform(1.0, 9.0))
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            outcomes["killed"] += 1
            process.wait()
            outcomes["killed mid-ingest"] += bool(list(store.root.glob(".staging-*")))  # a version half-built
        else:
            assert process.returncode == 0, process.stderr.read().decode() if process.stderr else ""
            outcomes["finished"] += 1
        process.wait()
        manifest = store.read_manifest()
        if manifest is None:  # killed before the very first version was published
            assert run == 0 or outcomes["finished"] == 0
            continue
        client, collection, _ = store.open_collection()
        ids = collection.get(include=[])["ids"]
        client.close()
        assert len(ids) == len(set(ids)) == manifest["chunks"], run  # no chunk twice
        assert set(ids) == _expected_ids(manifest, versions), run  # none missing, none extra
        retriever = Retriever(store, embedder=embedder)
        assert retriever.search("What is pre-training?", 3), run
        retriever.close()

    print(outcomes)
    assert outcomes["killed mid-ingest"] >= 3 and outcomes["finished"] >= 2, outcomes  # kills at many points
    final = subprocess.run(command, env=environment, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stderr
    manifest = store.read_manifest()
    assert manifest is not None and set(manifest["files"]) == {g.path for g in read_guides([guides])}
    assert not list(store.root.glob(".staging-*"))
    assert len(list(store.root.glob("v-*"))) <= 2
