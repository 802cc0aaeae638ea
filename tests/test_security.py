"""What the served tutor does not give away: files outside its own assets, uploads, other routes.
See SECURITY.md."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from .conftest import ROOT

SECRETS = ["/etc/passwd", str(ROOT / "pyproject.toml"), str(ROOT / "tutor" / "config.py")]


@pytest.mark.parametrize("mount", ["", "embed/"])
def test_no_file_outside_the_apps_assets_is_served(server: tuple[str, Path], mount: str) -> None:
    url, data = server
    targets = [*SECRETS, str(data.parent / "index" / "CURRENT"), str(data.parent / "serve.log")]
    for target in targets:
        for route in (f"gradio_api/file={target}", f"file={target}", f"gradio_api/file=../../../..{target}"):
            response = httpx.get(url + mount + route)
            assert response.status_code in (403, 404), (route, response.status_code)
            assert "root:" not in response.text and "[project]" not in response.text


def test_uploads_are_refused(server: tuple[str, Path]) -> None:
    for mount in ("", "embed/"):
        response = httpx.post(server[0] + mount + "gradio_api/upload", files={"files": ("x.txt", b"hello")})
        assert response.status_code == 404, (mount, response.status_code, response.text[:200])
