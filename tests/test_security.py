"""What the served tutor does not give away: files outside its own assets, uploads, other routes.
See SECURITY.md."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from .conftest import INTRANET, ROOT, TOKEN

BEARER = {"Authorization": f"Bearer {TOKEN}"}

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


# Gradio's routes that take files (upload, screen recordings, multipart component calls) or make the
# server call the Hugging Face Hub for a client (run history); the page needs none of them.
UPLOAD_ROUTES = [
    "gradio_api/upload",
    "gradio_api/process_recording",  # issue 11, item 8
    "gradio_api/component_server",
    "gradio_api/component_server/",
    "gradio_api/run-history/connect",
]


def test_uploads_are_refused(server: tuple[str, Path]) -> None:
    for mount in ("", "embed/"):
        for route in UPLOAD_ROUTES:
            files = {"files": ("x.txt", b"hello"), "data": (None, "{}")}
            response = httpx.post(server[0] + mount + route, files=files)
            assert response.status_code == 404, (mount, route, response.status_code, response.text[:200])
            assert response.json() == {"error": "not found"}
        assert httpx.get(server[0] + mount + "gradio_api/run-history/buckets").status_code == 404


FOREIGN = {"Host": "tutor.example.org", "Origin": "https://evil.example"}
GRADIO_ROUTES = ["config", "gradio_api/info", "gradio_api/file=/etc/passwd", "embed/config", "gradio_api/queue/status"]


def _cors(response: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k.lower().startswith("access-control-")}


def test_gradio_routes_allow_only_the_configured_origins(server: tuple[str, Path], guarded: tuple[str, Path]) -> None:
    """With a Host other than localhost, Gradio answered any Origin with Allow-Origin and
    Allow-Credentials (issue 11, item 6). Now no origin on the default server, and on the guarded
    one only the intranet's, without credentials, on every route."""
    preflight = {"Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "authorization"}
    for route in GRADIO_ROUTES:
        plain = httpx.get(server[0] + route, headers=FOREIGN)
        assert plain.status_code in (200, 403, 404) and not _cors(plain), (route, _cors(plain))
        asked = httpx.options(server[0] + route, headers={**FOREIGN, **preflight})
        assert not _cors(asked), (route, _cors(asked))
        signed_in = httpx.get(guarded[0] + route, headers={**FOREIGN, **BEARER})
        assert not _cors(signed_in), (route, _cors(signed_in))
        intranet = httpx.get(guarded[0] + route, headers={**FOREIGN, **BEARER, "Origin": INTRANET})
        assert _cors(intranet).get("access-control-allow-origin") == INTRANET, (route, _cors(intranet))
        assert "access-control-allow-credentials" not in _cors(intranet)


def test_gradio_refusals_are_json_errors(server: tuple[str, Path]) -> None:
    """Gradio's `{"detail": ...}` comes out as the API's `{"error": ...}` (issue 11, item 9)."""
    url = server[0]
    for method, route, body in [
        ("GET", "gradio_api/file=/etc/passwd", None),
        ("POST", "gradio_api/queue/join", {}),
        # An event the page does not have: a 500 and a traceback in the log, now a 404.
        ("POST", "gradio_api/run/predict", {"data": []}),
        ("POST", "gradio_api/call/nothing", {"data": []}),
        ("POST", "embed/gradio_api/queue/join", {"data": [], "fn_index": 999, "session_hash": "abc"}),
    ]:
        response = httpx.request(method, url + route, json=body)
        assert 400 <= response.status_code < 500, (route, response.status_code)
        if response.headers.get("content-type", "").startswith("application/json"):
            error = response.json()
            assert set(error) == {"error"} and error["error"] and "\n" not in error["error"], (route, error)


def test_an_unknown_queue_session_is_refused_without_a_traceback(server: tuple[str, Path]) -> None:
    """Gradio raised inside the event stream it had begun: two tracebacks in the log (issue 11, item 9)."""
    url, data = server
    for mount in ("", "embed/"):
        response = httpx.get(url + mount + "gradio_api/queue/data", params={"session_hash": "nobody"}, timeout=30)
        assert response.status_code == 200 and "session_not_found" in response.text
    assert httpx.get(url + "healthz").status_code == 200
    assert "Traceback" not in (data.parent / "serve.log").read_text()


def _file_data(path: str) -> dict[str, object]:
    return {"path": path, "url": None, "orig_name": "x.txt", "meta": {"_type": "gradio.FileData"}}


def _backend_events(url: str) -> list[tuple[int, int]]:
    """(fn_index, number of inputs) of every event of a page that runs on the server."""
    config = httpx.get(url + "config", timeout=30).json()
    return [
        (dependency.get("id", i), len(dependency["inputs"]))
        for i, dependency in enumerate(config["dependencies"])
        if dependency.get("backend_fn")
    ]


@pytest.mark.parametrize("mount", ["", "embed/"])
def test_no_event_of_the_page_takes_a_client_file(server: tuple[str, Path], mount: str) -> None:
    """Issue 11.1: a FileData naming any path, in any input or the event data of any event, is refused
    before Gradio sees it; nothing is copied into Gradio's cache and the server keeps answering."""
    url = server[0] + mount
    events = _backend_events(url)
    assert len(events) >= (2 if mount else 6), events
    for target in [*SECRETS, "/proc/self/environ", "/dev/zero"]:
        for fn_index, inputs in events:
            for slot in range(max(inputs, 1)):
                data: list[object] = ["What is RAG?"] * max(inputs, 1)
                data[slot] = _file_data(target)
                for body in (
                    {"data": data, "fn_index": fn_index, "session_hash": "probe", "event_data": None},
                    {"data": ["x"] * inputs, "fn_index": fn_index, "session_hash": "probe",
                     "event_data": {"index": 0, "value": _file_data(target)}},
                    {"data": [[{"role": "user", "content": _file_data(target)}]] * max(inputs, 1), "fn_index": fn_index,
                     "session_hash": "probe"},
                ):  # fmt: skip
                    response = httpx.post(url + "gradio_api/queue/join", json=body, timeout=10)
                    assert response.status_code == 422, (fn_index, slot, response.status_code, response.text[:200])
                    assert "takes no files" in response.json()["error"]
                    for route in ("gradio_api/run/predict", f"gradio_api/call/{fn_index}"):
                        refused = httpx.post(url + route, json=body, timeout=10)
                        assert refused.status_code == 422, (route, refused.status_code)
    assert httpx.get(server[0] + "healthz", timeout=5).status_code == 200
    answer = httpx.post(server[0] + "api/ask", json={"question": "What is RAG?"}, timeout=300)
    assert answer.status_code == 200 and answer.json()["answer"]


def test_names_a_file_finds_file_objects_anywhere() -> None:
    from tutor.web.gradio_guard import names_a_file

    assert names_a_file({"data": [1, {"a": [{"path": "/etc/passwd"}]}]})
    assert names_a_file([{"meta": {"_type": "gradio.FileData"}, "url": "x"}])
    assert names_a_file(json_nest(40))  # deeper than any event is refused too
    assert not names_a_file({"data": ["What is RAG?", True, 3, None], "fn_index": 2, "session_hash": "abc"})


def json_nest(depth: int) -> object:
    value: object = "x"
    for _ in range(depth):
        value = [value]
    return value
