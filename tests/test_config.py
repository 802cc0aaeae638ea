"""One settings object: default < tutor.toml < TUTOR_* environment < flag; unknown keys refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from tutor.config import Settings, load_settings
from tutor.errors import ConfigError
from tutor.openai_api import chat_request_model
from tutor.web.schemas import ask_request_model


def test_resolution_order(isolated_paths: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (isolated_paths / "tutor.toml").write_text("k = 5\nmin_score = 0.5\npreset = 'strict'\n")
    monkeypatch.setenv("TUTOR_K", "4")
    settings = load_settings(preset="beginner")
    assert settings.k == 4  # environment beats the file
    assert settings.min_score == 0.5  # the file beats the default
    assert settings.preset == "beginner"  # a flag beats everything
    assert settings.max_answer_tokens == Settings.model_fields["max_answer_tokens"].default


def test_paths_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TUTOR_CORPUS_DIR", str(tmp_path / "c"))
    monkeypatch.setenv("TUTOR_MODEL_PATH", str(tmp_path / "m.gguf"))
    settings = load_settings()
    assert settings.corpus_dir == tmp_path / "c"
    assert settings.model_path == tmp_path / "m.gguf"


def test_unknown_key_in_file_is_an_error(isolated_paths: Path) -> None:
    (isolated_paths / "tutor.toml").write_text("top_k = 3\n")
    with pytest.raises(ConfigError, match="top_k"):
        load_settings()


@pytest.mark.parametrize(("name", "value"), [("TUTOR_K", "many"), ("TUTOR_K", "0"), ("TUTOR_MIN_SCORE", "7")])
def test_wrong_values_are_errors(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=name.removeprefix("TUTOR_").lower()):
        load_settings()


def test_malformed_file_is_an_error(isolated_paths: Path) -> None:
    (isolated_paths / "tutor.toml").write_text("k = = 3\n")
    with pytest.raises(ConfigError):
        load_settings()


def test_the_scope_band_follows_the_packaged_model(isolated_paths: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The 0.5B model's scope judgement is asked under 0.30 unless the band is given; a given band,
    a model file of one's own, a model server or a wrong model name is not changed by it."""
    assert load_settings().scope_judge_below == 0.35
    assert load_settings(model="fast").scope_judge_below == 0.30
    assert load_settings(model="fast", scope_judge_below=0.4).scope_judge_below == 0.4
    assert load_settings(model="fast", model_path=isolated_paths / "own.gguf").scope_judge_below == 0.35
    assert load_settings(model="fast", llm_url="http://127.0.0.1:8080/v1").scope_judge_below == 0.35
    (isolated_paths / "tutor.toml").write_text('model = "fast"\n')
    assert load_settings().scope_judge_below == 0.30
    monkeypatch.setenv("TUTOR_MODEL", "fast")
    assert load_settings().scope_judge_below == 0.30
    (isolated_paths / "tutor.toml").write_text("scope_judge_below = 0.0\n")
    assert load_settings().scope_judge_below == 0.0
    monkeypatch.delenv("TUTOR_MODEL")
    for wrong in ("huge", ["fast"]):
        (isolated_paths / "tutor.toml").write_text(f"model = {wrong!r}\n".replace("'", '"'))
        with pytest.raises(ConfigError, match="model"):
            load_settings()


def test_every_setting_is_documented_in_the_readme() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for name, field in Settings.model_fields.items():
        assert f"TUTOR_{name.upper()}" in readme, name
        assert field.description


def test_every_door_reads_k_as_one_json_integer() -> None:
    """/api/ask and the OpenAI-compatible door take k as JSON Schema's integer, as MCP does: 2.0
    is 2; "2", true and 2.5 are refused (the OpenAI door refused 2.0 and took what the others refused)."""
    doors = [
        (ask_request_model(2000, 8000, ["tutor"]), {"question": "What is RAG?"}),
        (chat_request_model(["tutor"]), {"model": "tutor", "messages": [{"role": "user", "content": "What is RAG?"}]}),
    ]
    for request, body in doors:
        assert request.model_validate({**body, "k": 2.0}).k == 2
        assert request.model_validate({**body, "k": None}).k is None
        for wrong in ("2", True, 2.5, 0, 21):
            with pytest.raises(ValidationError) as refused:
                request.model_validate({**body, "k": wrong})
            assert [error["loc"] for error in refused.value.errors()] == [("k",)], (request.__name__, wrong)
