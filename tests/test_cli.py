"""The command line: contracts, and a one-line message with a non-zero exit for every bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tutor import IndexStore
from tutor.cli import run
from tutor.models import DEFAULT_MODEL_FILE, DEFAULT_MODEL_SHA256, join_default_model, sha256_file


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
    before = IndexStore(index_copy).current_dir()
    guides = tmp_path / "guides"
    guides.mkdir()
    (guides / "good.md").write_text("# Good\n\nFine text.\n")
    (guides / "bad.md").write_bytes(b"\xff\xfe broken")
    _fails(capsys, ["ingest", str(guides)], "bad.md: not valid UTF-8 text")
    assert IndexStore(index_copy).current_dir() == before
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
    joined = join_default_model(cache)  # from the six part packages
    assert joined.name == DEFAULT_MODEL_FILE and sha256_file(joined) == DEFAULT_MODEL_SHA256
    assert [p.name for p in cache.iterdir()] == [DEFAULT_MODEL_FILE]  # no partial file left
    with joined.open("r+b") as handle:  # truncate it, as a failed copy would
        handle.truncate(1_000_000)
    monkeypatch.setenv("TUTOR_CACHE_DIR", str(cache))
    _fails(capsys, ["ask", "What is RAG?"], f"expected {DEFAULT_MODEL_SHA256[:16]}…; the file is damaged")


def test_presets_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["presets"]) == 0
    out = capsys.readouterr().out
    assert "tutor: The default tutor." in out and "strict:" in out and "beginner:" in out


def test_ingest_reports_then_noop(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    guides = tmp_path / "guides"
    guides.mkdir()
    (guides / "a.md").write_text("# A\n\n## One\n\nPre-training makes a base model.\n")
    assert run(["ingest", "--quiet", str(guides)]) == 0
    assert "indexed 1 chunks from 1 guides (added 1, changed 0, removed 0, unchanged 0)" in capsys.readouterr().out
    assert run(["ingest", "--quiet", str(guides)]) == 0
    assert "index up to date: 1 guides, 1 chunks" in capsys.readouterr().out


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
    source = answer["sources"][0]
    assert source["n"] == 1 and source["path"].startswith("corpus/") and 0 < source["score"] <= 1
    assert {"guide", "section", "text"} <= set(source)
    assert {"retrieve_s", "first_token_s", "total_s", "explain_s"} <= set(answer["timings"])
    assert all({"text", "supported_by", "support"} <= set(s) for s in answer["sentences"])


def test_eval_command_scores(
    capsys: pytest.CaptureFixture[str], corpus_index: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
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
                "id": "b",
                "question": "Who won the football world cup in 2010?",
                "out_of_scope": True,
                "facts": [],
                "source_phrase": None,
            }
        )
        + "\n"
    )
    out = tmp_path / "out.jsonl"
    assert run(["eval", str(questions), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "source_hit_rate          1.0" in printed and "out_of_scope_flagged     1.0" in printed
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in records] == ["a", "b"] and records[1]["in_scope"] is False
