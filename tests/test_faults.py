"""Faults: `tutor ingest` killed with SIGKILL at random moments, twenty times in a row (after every
kill the index holds exactly the chunks of one complete corpus version, none missing, none twice,
and answers a search); the Chroma server and the LLM server going away and coming back; the
index deleted or damaged under a running tutor."""

from __future__ import annotations

import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tutor import FolderStore, Retriever, Tutor, load_settings
from tutor.answer import Token
from tutor.cli import run as tutor_cli
from tutor.corpus import read_guides
from tutor.embed import Embedder
from tutor.errors import IndexMissingError, ModelError
from tutor.index import guide_chunks, ingest
from tutor.index_server import ChromaServerStore
from tutor.llm import OpenAIChat
from tutor.model_files import resolve_model_path

from .conftest import CORPUS, ROOT, free_port, wait_for_http

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
    command = [sys.executable, "-c", "from tutor.cli import main; main()", "ingest", "--quiet"]
    store = FolderStore(tmp_path / "index")
    versions: dict[str, set[str]] = {}  # file sha -> the chunk ids of that version of the guide
    rng = random.Random(20261123)
    outcomes = {"killed": 0, "killed mid-ingest": 0, "finished": 0}

    def remember_versions() -> None:
        for guide in read_guides([guides]):
            versions[guide.sha256] = {c.id for c in guide_chunks(guide, 400, 60)}

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
        # Every fifth run is let finish, so that the loop also publishes versions on a machine
        # slow enough for every random kill to land mid-ingest (CI's was).
        if run % 5 == 4:
            process.wait(timeout=300)
        else:
            time.sleep(rng.uniform(1.0, 9.0))
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            outcomes["killed"] += 1
            process.wait()
            outcomes["killed mid-ingest"] += bool(list(store.root.glob(".staging-*")))  # a version half-built
        else:
            assert process.returncode == 0, process.stderr.read().decode() if process.stderr else ""
            outcomes["finished"] += 1
        manifest = store.read_manifest()
        if manifest is None:  # killed before the very first version was published
            assert run == 0 or outcomes["finished"] == 0
            continue
        opened = store.open_version()
        client, collection = opened.client, opened.collection
        opened.words.close()
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


def _start(command: list[str], log: Path, url: str) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(command, stdout=log.open("a"), stderr=subprocess.STDOUT)
    wait_for_http(url, process, log, 120)
    return process


def test_the_chroma_server_down_and_back(tmp_path: Path, embedder: Embedder) -> None:
    """Searches fail with one clear line while the index's server is down, and work when it is back."""
    port = free_port()
    command = [str(Path(sys.executable).with_name("chroma")), "run", "--path", str(tmp_path / "db"),
               "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    process = _start(command, tmp_path / "chroma.log", url + "/api/v2/heartbeat")
    try:
        store = ChromaServerStore(url, lock_dir=tmp_path / "lock")
        ingest(read_guides([CORPUS]), store, embedder=embedder, chunk_size=400, chunk_overlap=60)
        retriever = Retriever(store, embedder=embedder)
        assert retriever.search("What is RLHF?", 3)
        process.terminate()
        process.wait(timeout=30)
        with pytest.raises(IndexMissingError, match=f"Chroma server at {url} does not answer|cannot be searched"):
            retriever.search("What is RLHF?", 3)
        process = _start(command, tmp_path / "chroma.log", url + "/api/v2/heartbeat")
        assert retriever.search("What is RLHF?", 3)[0].text  # back, without a restart of the tutor
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_the_llm_server_killed_mid_answer(tmp_path: Path, real_tutor: Tutor) -> None:
    """The client gets one clear error, and the next question works once the server is back."""
    port = free_port()
    settings = load_settings()  # the model real_tutor loads: TUTOR_MODEL in the environment pytest runs in
    model = resolve_model_path(None, None, settings.cache_dir, settings.model)
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1",
               "--port", str(port), "--n_ctx", "2048"]  # fmt: skip
    url = f"http://127.0.0.1:{port}/v1"
    process = _start(command, tmp_path / "llm.log", url + "/models")
    tutor = Tutor(
        retriever=real_tutor.retriever,
        chat=OpenAIChat(url),
        embedder=real_tutor.embedder,
        presets=real_tutor.presets,
        settings=load_settings(attribution="off"),
    )
    try:
        stream = tutor.stream("What are the five layers of AI model training?")
        with pytest.raises(ModelError, match="failed mid-answer|not reachable") as failure:
            for item in stream:
                if isinstance(item, Token) and item.text.strip():
                    process.kill()  # mid-answer
                    process.wait()
        assert "\n" not in str(failure.value)
        assert tutor.gate.busy == 0  # the failed answer gave the model back
        process = _start(command, tmp_path / "llm.log", url + "/models")
        assert tutor.ask("What is RLHF?").answer
    finally:
        process.kill()
        process.wait()


def test_the_index_deleted_or_damaged_while_serving(
    index_copy: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A clear message while it is gone, and `tutor ingest` repairs it under the running retriever."""
    store = FolderStore(index_copy)
    retriever = Retriever(store, embedder=embedder)
    assert retriever.search("What is RLHF?", 3)
    (index_copy / "CURRENT").write_text("v-that-does-not-exist")
    with pytest.raises(IndexMissingError, match="run `tutor ingest`"):
        retriever.search("What is RLHF?", 3)
    shutil.rmtree(index_copy)
    with pytest.raises(IndexMissingError, match="run `tutor ingest`"):
        retriever.search("What is RLHF?", 3)
    monkeypatch.chdir(ROOT)
    assert tutor_cli(["ingest"]) == 0
    assert retriever.search("What is RLHF?", 3)[0].text


def test_answers_stay_consistent_while_ingest_publishes_new_versions(
    tmp_path: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Searches during repeated ingests each come from one whole version: every passage belongs to
    the corpus version the search reports, and none fails."""
    monkeypatch.chdir(tmp_path)
    variants = {}
    for name, extra in (("a", ""), ("b", "\n\n## Added\n\nA passage that only version b has, about pre-training.\n")):
        folder = tmp_path / name / "guides"
        shutil.copytree(CORPUS, folder)
        training = folder / "training-and-post-training.md"
        training.write_text(training.read_text() + extra)
        variants[name] = folder
    # Both variants under one path, swapped in place, as an editor would change the guides.
    guides = tmp_path / "guides"
    ids_of: dict[str, set[str]] = {}
    store = FolderStore(tmp_path / "index")
    for name in ("b", "a"):
        shutil.rmtree(guides, ignore_errors=True)
        shutil.copytree(variants[name], guides)
        read = read_guides([guides])
        report = ingest(read, store, embedder=embedder, chunk_size=400, chunk_overlap=60)
        ids_of[report.corpus_version] = {c.id for g in read for c in guide_chunks(g, 400, 60)}
    retriever = Retriever(store, embedder=embedder)
    failures: list[BaseException] = []
    versions_seen: set[str] = set()

    def keep_ingesting() -> None:
        try:
            for turn in range(6):
                shutil.rmtree(guides)
                shutil.copytree(variants["ab"[turn % 2]], guides)
                published = ingest(read_guides([guides]), store, embedder=embedder, chunk_size=400, chunk_overlap=60)
                deadline = time.monotonic() + 10  # each version searched at least once before the next
                while published.corpus_version not in versions_seen and time.monotonic() < deadline:
                    time.sleep(0.01)
        except BaseException as exc:
            failures.append(exc)

    writer = threading.Thread(target=keep_ingesting)
    writer.start()
    searches = 0
    while writer.is_alive() or searches < 10:
        found = retriever.search("What happens during pre-training?", 5)
        version = retriever.corpus_version
        assert found and {p.id for p in found} <= ids_of[version], version
        versions_seen.add(version)
        searches += 1
    writer.join()
    assert not failures, failures
    assert versions_seen == set(ids_of), versions_seen  # both versions were answered from
    retriever.close()


def _file_size_limit(limit: int) -> Callable[[], None]:
    def apply() -> None:  # in the child: writes past `limit` bytes fail as on a full disk
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_a_full_disk_during_ingest_leaves_the_previous_index(
    index_copy: Path, tmp_path: Path, embedder: Embedder
) -> None:
    """Real failed writes (RLIMIT_FSIZE): while copying the current version, and inside Chroma's own
    writes. Each: one `error:` line, the index unchanged and answering, nothing left behind."""
    guides = tmp_path / "guides"
    shutil.copytree(CORPUS, guides)
    (guides / "glossary-training.md").write_text((guides / "glossary-training.md").read_text() + "\n\nMore text.\n")
    store = FolderStore(index_copy)
    before, chunks = store.current_version(), store.read_manifest()["chunks"]  # type: ignore[index]
    database = (store.current_dir() or index_copy) / "chroma.sqlite3"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("TUTOR_")}
    environment |= {"TUTOR_INDEX_DIR": str(index_copy), "TUTOR_CORPUS_DIR": str(guides)}
    command = [sys.executable, "-c", "from tutor.cli import main; main()", "ingest", "--quiet"]
    for limit in (database.stat().st_size // 2, database.stat().st_size + 8192):  # the copy; Chroma's writes
        result = subprocess.run(
            command, env=environment, capture_output=True, text=True, timeout=300, preexec_fn=_file_size_limit(limit)
        )
        assert result.returncode == 1, (limit, result.stderr[-500:])
        assert result.stderr.startswith("error: ingest failed, the previous index is unchanged: ")
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
        assert store.current_version() == before and store.read_manifest()["chunks"] == chunks  # type: ignore[index]
        assert not list(index_copy.glob(".staging-*"))
        retriever = Retriever(store, embedder=embedder)
        assert retriever.search("What is RLHF?", 3)
        retriever.close()
    repaired = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=300)
    assert repaired.returncode == 0 and store.current_version() != before, repaired.stderr
