"""Docs that run: every example between the README's doors-examples markers is executed against a
real `tutor serve` (Python and shell blocks; JSON blocks must parse), so the README cannot drift
from the three doors."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT

README = (ROOT / "README.md").read_text()
SECTION = README.split("<!-- doors-examples:start -->")[1].split("<!-- doors-examples:end -->")[0]
BLOCKS = re.findall(r"^```(\w+)\n(.*?)^```", SECTION, flags=re.DOTALL | re.MULTILINE)
DOCUMENTED_URL = "http://127.0.0.1:7860"


def test_the_section_has_an_example_for_each_door() -> None:
    code = "\n".join(text for _, text in BLOCKS)
    assert [language for language, _ in BLOCKS].count("python") == 3
    for door in ("GuideRetriever", "TutorRunnable", "/v1", "chat.completions.create", "call_tool", '"mcp"'):
        assert door in code, door


@pytest.mark.parametrize(
    ("language", "text"), BLOCKS, ids=[f"{n}-{language}" for n, (language, _) in enumerate(BLOCKS)]
)
def test_the_readme_example_runs(
    server: tuple[str, Path], corpus_index: Path, tmp_path: Path, language: str, text: str
) -> None:
    if language == "json":
        json.loads(text)
        return
    assert language in ("python", "sh"), language
    code = text.replace(DOCUMENTED_URL, server[0].rstrip("/"))
    shutil.copytree(corpus_index, tmp_path / "index")
    environment = {k: v for k, v in os.environ.items() if not k.startswith("TUTOR_")}
    environment |= {"TUTOR_INDEX_DIR": str(tmp_path / "index"), "TUTOR_PROMPTS_DIR": str(ROOT / "prompts")}
    command = [sys.executable, "-c", code] if language == "python" else ["bash", "-euo", "pipefail", "-c", code]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=environment, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Traceback" not in result.stderr and len(result.stdout) > 100, (result.stdout, result.stderr[-2000:])
