"""Scale-out on real engines: two `tutor serve` replicas sharing one index on a real Chroma server
(`chroma run`) and one model on a real OpenAI-compatible server (`python -m llama_cpp.server`)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx

from tutor.index_server import ChromaServerStore

from .conftest import CORPUS, free_port, start_tutor, wait_for_http

NEW_GUIDE = """---
title: Tutor test guide
origin: written for the tutor's tests
language: en
---

# Tutor test guide

## Mascots

The mascot of the tutor's test guide is a purple heron called Quillon, chosen in a staff vote.
"""


def _ingest(environment: dict[str, str], cwd: Path) -> str:
    command = [sys.executable, "-c", "from tutor.cli import main; main()", "ingest"]
    result = subprocess.run(command, env=environment, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_two_replicas_share_one_index_and_one_model(
    server_store: ChromaServerStore, llm_server: str, corpus_index: Path, tmp_path: Path
) -> None:
    corpus = tmp_path / "guides"
    shutil.copytree(CORPUS, corpus)
    shared = {
        "TUTOR_CHROMA_URL": server_store.url,
        "TUTOR_LLM_URL": llm_server,
        "TUTOR_CORPUS_DIR": str(corpus),
        "TUTOR_ATTRIBUTION": "off",  # scoring on llama-cpp-python's server is slow; tested in test_llm_server
        "TUTOR_MAX_ANSWER_TOKENS": "64",
    }
    environment = {k: v for k, v in os.environ.items() if not k.startswith("TUTOR_")} | shared
    environment["TUTOR_INDEX_DIR"] = str(tmp_path / "lock")
    assert "5 guides" in _ingest(environment, tmp_path)

    replicas, processes = [], []
    for name in ("a", "b"):
        folder = tmp_path / name
        folder.mkdir()
        port = free_port()
        processes.append(start_tutor(folder, corpus_index, port, env=shared))
        replicas.append((f"http://127.0.0.1:{port}/", folder))
    try:
        for (url, folder), process in zip(replicas, processes, strict=True):
            wait_for_http(url + "healthz", process, folder / "serve.log", 180)
        first_version = server_store.read_manifest()["corpus_version"]  # type: ignore[index]
        for url, _ in replicas:
            ready = httpx.get(url + "readyz").json()
            assert ready["corpus_version"] == first_version
            assert ready["llm_url"] == llm_server and ready["chroma_url"] == server_store.url
            answer = httpx.post(url + "api/ask", json={"question": "What is RLHF?"}, timeout=180).json()
            assert answer["in_scope"] is True and answer["sources"] and answer["corpus_version"] == first_version
            assert "human" in answer["answer"].lower() or "feedback" in answer["answer"].lower(), answer["answer"]

        # One ingest publishes a new version; both replicas answer from it without a restart.
        (corpus / "tutor-test-guide.md").write_text(NEW_GUIDE)
        assert "added 1" in _ingest(environment, tmp_path)
        new_version = server_store.read_manifest()["corpus_version"]  # type: ignore[index]
        assert new_version != first_version
        for url, _ in replicas:
            answer = httpx.post(
                url + "api/ask", json={"question": "What is the mascot of the tutor's test guide?"}, timeout=180
            ).json()
            assert answer["corpus_version"] == new_version
            assert answer["sources"][0]["path"].endswith("tutor-test-guide.md")
            assert "heron" in answer["answer"].lower() or "quillon" in answer["answer"].lower(), answer["answer"]
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=30)
    for _, folder in replicas:
        log = (folder / "serve.log").read_text()
        assert "Traceback" not in log
