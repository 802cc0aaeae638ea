"""Shared fixtures. The real default embedder, Chroma and chat model are built once per session;
every test's own paths (index, config) point into its tmp_path."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tutor import Tutor, build_embedder, load_settings
from tutor.embed import Embedder
from tutor.factory import ingest_from_settings
from tutor.index_server import ChromaServerStore
from tutor.llm import Message
from tutor.model_files import resolve_model_path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "corpus"
TOKEN = "correct horse battery staple"
INTRANET = "http://intranet.example"
SHARED_GUIDES = ROOT.parent / "shared" / "guides"


REAL_PARTS = {"real_tutor", "server", "guarded", "llm_server", "chroma_server", "page", "browser"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that load the real chat model or start real servers are `slow`: `make test-fast` leaves
    them out while coding; `make test` (and CI) runs everything."""
    for item in items:
        if REAL_PARTS & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


class FakeChat:
    """Replays queued replies and records every prompt it was sent."""

    name = "fake"

    def __init__(self, *replies: list[str]) -> None:
        self.replies = list(replies)
        self.prompts: list[list[Message]] = []

    def stream(
        self,
        messages: list[Message],
        *,
        max_tokens: int,
        temperature: float,
        generation: Any = None,
        contrast: Any = None,
        aside: bool = False,
    ) -> Iterator[str]:
        self.prompts.append(messages)
        yield from self.replies.pop(0)

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def token_logprobs(
        self, messages: list[Message], answer: str, *, generation: Any = None
    ) -> list[tuple[str, float]]:
        """A model that finds every answer likely with passages (p=0.9) and unlikely without (p=0.1)."""
        likely = "Passages quoted from the guides" in messages[-1]["content"]
        return [(piece, math.log(0.9 if likely else 0.1)) for piece in re.findall(r"\S+\s*", answer)]


@pytest.fixture(autouse=True)
def isolated_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the index and the settings file at tmp_path; keep the shared model cache."""
    for name in list(os.environ):
        if name.startswith("TUTOR_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("TUTOR_INDEX_DIR", str(tmp_path / "index"))
    monkeypatch.setenv("TUTOR_CONFIG", str(tmp_path / "tutor.toml"))
    monkeypatch.setenv("TUTOR_PROMPTS_DIR", str(ROOT / "prompts"))
    monkeypatch.setenv("TUTOR_CORPUS_DIR", str(CORPUS))
    monkeypatch.setenv("TRANSFORMERS_VERBOSITY", "error")
    return tmp_path


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    """The real default embedder (all-mpnet-base-v2 from its packages)."""
    return build_embedder(load_settings(embed_model=None))


@pytest.fixture(scope="session")
def corpus_index(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Path:
    """A real Chroma index of the real corpus, built once; copy it before changing it."""
    folder = tmp_path_factory.mktemp("corpus-index") / "index"
    ingest_from_settings(load_settings(index_dir=folder, corpus_dir=CORPUS), embedder=embedder)
    return folder


@pytest.fixture
def index_copy(corpus_index: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of the corpus index, set as this test's TUTOR_INDEX_DIR."""
    folder = tmp_path / "index"
    shutil.copytree(corpus_index, folder)
    monkeypatch.setenv("TUTOR_INDEX_DIR", str(folder))
    return folder


@pytest.fixture(scope="session")
def real_tutor(corpus_index: Path) -> Iterator[Tutor]:
    """The real pipeline: default model, real Chroma, real embedder, the shipped presets."""
    from tutor import build_tutor

    settings = load_settings(index_dir=corpus_index, prompts_dir=ROOT / "prompts")
    tutor = build_tutor(settings)
    yield tutor
    if tutor.retriever is not None:
        tutor.retriever.close()


def sse_events(response: Any) -> list[tuple[str, dict[str, Any]]]:
    """The (event, data) pairs of a server-sent-events response, in order."""
    events: list[tuple[str, dict[str, Any]]] = []
    name = ""
    for line in response.iter_lines():
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            events.append((name, json.loads(line[6:])))
    return events


def free_port() -> int:
    """A loopback port nobody listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def stop(process: subprocess.Popen[bytes]) -> None:
    """End a server: asked first, killed if it is still busy (a scoring request) after 30 s."""
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=30)


def wait_for_http(url: str, process: subprocess.Popen[bytes], log: Path, seconds: float) -> None:
    """Wait until `url` answers; fail with the server's log if it exits or takes too long."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise AssertionError(f"{url} did not come up:\n{log.read_text()}") from None
            time.sleep(0.5)


def start_tutor(
    folder: Path, corpus_index: Path, port: int, *options: str, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """`tutor serve` in a subprocess over a copy of the corpus index in `folder`, logging to serve.log;
    `env` adds settings (TUTOR_*)."""
    shutil.copytree(corpus_index, folder / "index")
    environment = {k: v for k, v in os.environ.items() if not k.startswith("TUTOR_")}
    environment |= {
        "TUTOR_INDEX_DIR": str(folder / "index"),
        "TUTOR_DATA_DIR": str(folder / "data"),
        "TUTOR_CONFIG": str(folder / "tutor.toml"),
        "TUTOR_PROMPTS_DIR": str(ROOT / "prompts"),
        "TUTOR_CORPUS_DIR": str(ROOT / "corpus"),
        "GRADIO_ANALYTICS_ENABLED": "False",
        **(env or {}),
    }
    command = [sys.executable, "-c", "from tutor.cli import main; main()", "serve", "--port", str(port), *options]
    log = (folder / "serve.log").open("w")
    return subprocess.Popen(command, env=environment, stdout=log, stderr=subprocess.STDOUT, cwd=folder)


@pytest.fixture(scope="session")
def server(corpus_index: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A real `tutor serve` on a free port over a copy of the corpus index; yields (url, data dir)."""
    folder = tmp_path_factory.mktemp("served")
    port = free_port()
    process = start_tutor(folder, corpus_index, port)
    url = f"http://127.0.0.1:{port}/"
    wait_for_http(url, process, folder / "serve.log", 180)
    yield url, folder / "data"
    stop(process)
    assert "Traceback" not in (folder / "serve.log").read_text()


@pytest.fixture(scope="session")
def guarded(corpus_index: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A server with a token, a trusted SSO header from loopback, CORS and framing for the intranet,
    a line of one waiting question, and the question text in its log."""
    folder = tmp_path_factory.mktemp("guarded")
    port = free_port()
    settings = {
        "TUTOR_AUTH_TOKEN": TOKEN,
        "TUTOR_TRUSTED_USER_HEADER": "X-Forwarded-User",
        "TUTOR_CORS_ORIGINS": INTRANET,
        "TUTOR_FRAME_ANCESTORS": f"'self' {INTRANET}",
        "TUTOR_MAX_WAITING": "1",
        "TUTOR_MAX_REQUEST_BYTES": "20000",
    }
    process = start_tutor(folder, corpus_index, port, "--log-questions", env=settings)
    url = f"http://127.0.0.1:{port}/"
    wait_for_http(url + "healthz", process, folder / "serve.log", 180)
    yield url, folder
    stop(process)
    assert "Traceback" not in (folder / "serve.log").read_text()


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `chroma run` on a free loopback port; yields its URL."""
    folder = tmp_path_factory.mktemp("chroma-server")
    port = free_port()
    chroma = Path(sys.executable).with_name("chroma")
    log = (folder / "chroma.log").open("w")
    command = [str(chroma), "run", "--path", str(folder / "db"), "--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    wait_for_http(url + "/api/v2/heartbeat", process, folder / "chroma.log", 60)
    yield url
    stop(process)


@pytest.fixture
def server_store(chroma_server: str, tmp_path: Path) -> ChromaServerStore:
    """The index on the Chroma server, emptied first."""
    store = ChromaServerStore(chroma_server, lock_dir=tmp_path / "lock")
    for collection in store.client().list_collections():
        store.client().delete_collection(collection.name)
    return store


@pytest.fixture(scope="session")
def llm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`python -m llama_cpp.server` with the default model; yields its /v1 URL."""
    settings = load_settings()  # the model real_tutor loads: TUTOR_MODEL in the environment pytest runs in
    model = resolve_model_path(None, None, settings.cache_dir, settings.model)
    port = free_port()
    log_path = tmp_path_factory.mktemp("llm-server") / "server.log"
    log = log_path.open("w")
    command = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(model),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        "2048",
        "--logits_all",
        "true",
        "--interrupt_requests",
        "false",
    ]  # fmt: skip  (several tutors share it)
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    wait_for_http(url + "/models", process, log_path, 120)
    yield url
    stop(process)


def tutor_with(chat: Any, index: Path, embedder: Embedder) -> Tutor:
    """A Tutor on a real index and the real embedder, with `chat` (a fake) in place of the model."""
    from tutor import FolderStore, Retriever
    from tutor.prompts import load_presets

    return Tutor(
        retriever=Retriever(FolderStore(index), embedder=embedder),
        chat=chat,
        embedder=embedder,
        presets=load_presets(ROOT / "prompts"),
        settings=load_settings(),
    )


@pytest.fixture
def fake_tutor(index_copy: Path, embedder: Embedder) -> tuple[Tutor, FakeChat]:
    """The tutor on a copy of the corpus index with FakeChat, which records what it is sent."""
    chat = FakeChat()
    return tutor_with(chat, index_copy, embedder), chat
