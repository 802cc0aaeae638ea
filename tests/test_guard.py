"""The logic around requests, in process and in milliseconds (a fake chat model, Starlette's test
client): what Guard does to requests and responses, the sign-in cookie, the history budget, the
JSON route's thread, private records. The real server proves each of these too (test_deploy.py,
test_security.py, test_bad_input.py); see SECURITY.md."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import HTTPException
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from tutor import Tutor, load_settings
from tutor.answer import fit_history
from tutor.prompts import load_presets
from tutor.records import EXPORTS_KEPT_SECONDS, Records
from tutor.web.app import create_app
from tutor.web.guard import SESSION_SECONDS, Guard, issue_session, session_is_valid, session_key
from tutor.web.sse import pumped

from .conftest import ROOT, TOKEN, FakeChat

BEARER = {"Authorization": f"Bearer {TOKEN}"}


async def _gradio_like(request: Request) -> Response:
    """What Gradio's routes answer: CORS for any origin, with credentials; refusals as {"detail"}."""
    cors = {"Access-Control-Allow-Origin": "https://evil.example", "Access-Control-Allow-Credentials": "true"}
    if request.url.path == "/refused":
        return JSONResponse({"detail": [{"loc": ["body", "data"], "msg": "Field required"}]}, 422, headers=cors)
    if request.url.path == "/forbidden":
        return JSONResponse({"detail": "File not allowed: /etc/passwd."}, 403, headers=cors)
    if request.url.path == "/stream":

        async def events() -> Any:
            yield "data: session not found\n\n"
            raise HTTPException(404)  # as Gradio's queue/data does, inside the stream it began

        return StreamingResponse(events(), media_type="text/event-stream")
    return JSONResponse({"detail": "an answer, not a refusal"}, headers=cors)


def _guarded(**settings: Any) -> TestClient:
    inner = Starlette(routes=[Route("/{path:path}", _gradio_like, methods=["GET", "POST"])])
    return TestClient(Guard(inner, load_settings(**settings)))


def test_the_app_behind_cannot_allow_other_origins() -> None:
    client = _guarded()
    for path in ("/config", "/refused", "/forbidden"):
        response = client.get(path, headers={"Origin": "https://evil.example", "Host": "tutor.example.org"})
        assert not [k for k in response.headers if k.startswith("access-control-")], (path, response.headers)


def test_refusals_in_gradios_shape_become_the_apis() -> None:
    client = _guarded()
    refused = client.post("/refused")
    assert refused.status_code == 422 and refused.json() == {"error": "data: Field required"}
    assert int(refused.headers["content-length"]) == len(refused.content)
    assert client.get("/forbidden").json() == {"error": "File not allowed: /etc/passwd."}
    assert client.get("/fine").json() == {"detail": "an answer, not a refusal"}  # a 200 is left alone


def test_a_refusal_raised_inside_a_begun_stream_ends_it_quietly() -> None:
    response = _guarded().get("/stream")
    assert response.status_code == 200 and response.text == "data: session not found\n\n"


@pytest.mark.parametrize(
    "path",
    [
        "/gradio_api/upload",
        "/embed/gradio_api/process_recording",
        "/gradio_api/component_server/",
        "/gradio_api/run-history/connect",
    ],
)
def test_upload_routes_are_closed(path: str) -> None:
    response = _guarded().post(path, files={"files": ("x.txt", b"hello")})
    assert response.status_code == 404 and response.json() == {"error": "not found"}


def test_a_route_that_only_looks_like_one_is_open() -> None:
    assert _guarded().get("/gradio_api/upload_progress").status_code == 200


def test_a_session_is_signed_per_sign_in_and_expires() -> None:
    key, now = session_key(TOKEN), time.time()
    first, second = issue_session(key, now), issue_session(key, now)
    assert first != second and TOKEN not in first
    assert session_is_valid(key, first.encode(), now + SESSION_SECONDS - 1)
    assert not session_is_valid(key, first.encode(), now + SESSION_SECONDS + 1)
    assert not session_is_valid(session_key("another token"), first.encode(), now)
    issued, nonce, mac = first.split(".")
    for forged in (f"{int(now) + 999}.{nonce}.{mac}", f"{issued}.{nonce}x.{mac}", "", "a.b.c", "9" * 5000 + ".a.b"):
        assert not session_is_valid(key, forged.encode(), now), forged
    assert not session_is_valid(key, b"\xff\xfe.\x00.\x01", now)


def _app(**settings: Any) -> Any:
    chat = FakeChat(*[["Pre-training", " comes first."]] * 20)
    tutor = Tutor(
        retriever=None,
        chat=chat,
        embedder=None,  # type: ignore[arg-type]  (no passages, so nothing to embed)
        presets=load_presets(ROOT / "prompts"),
        settings=load_settings(attribution="off", **settings),
    )
    return create_app(tutor), chat


def _proxied(app: Any) -> httpx.AsyncClient:
    """A client at the loopback address, a trusted proxy by default (TestClient's is not an address)."""
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://tutor.example.org")


def test_the_sign_in_cookie_is_secure_behind_https(tmp_path: Path) -> None:
    app, _ = _app(auth_token=TOKEN, data_dir=tmp_path)

    async def sign_in(headers: dict[str, str]) -> str:
        async with _proxied(app) as client:
            response = await client.post("/login", data={"token": TOKEN, "next": "/"}, headers=headers)
            assert response.status_code == 303
            return response.headers["set-cookie"]

    plain, https = asyncio.run(sign_in({})), asyncio.run(sign_in({"X-Forwarded-Proto": "https"}))
    assert "Max-Age=43200" in plain and "HttpOnly" in plain and "Secure" not in plain
    assert "Secure" in https


def test_readiness_hides_the_engines_from_the_public(tmp_path: Path) -> None:
    app, _ = _app(auth_token=TOKEN, data_dir=tmp_path, llm_url="http://10.1.2.3:8080/v1")
    client = TestClient(app)
    assert "llm_url" not in client.get("/readyz").json() and "10.1.2.3" not in client.get("/readyz").text
    assert client.get("/readyz", headers=BEARER).json()["llm_url"] == "http://10.1.2.3:8080/v1"


@pytest.mark.parametrize("route", ["/api/ask", "/api/ask/stream"])
def test_a_lone_surrogate_in_a_turn_is_a_422(tmp_path: Path, route: str) -> None:
    app, chat = _app(data_dir=tmp_path)
    body = json.dumps({"question": "And?", "retrieval": False, "history": [["what \ud800", "A"]]})
    response = TestClient(app).post(route, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 422 and response.json()["error"].startswith("invalid request: history.0.0")
    assert not chat.prompts


def test_history_is_cut_to_its_token_budget_oldest_first(tmp_path: Path) -> None:
    words = FakeChat().count_tokens
    turns = [(f"q{n} " * 10, f"a{n} " * 30) for n in range(5)]  # 40 tokens a turn
    assert fit_history(turns, 100, words) == (turns[-2:], 3)
    assert fit_history(turns, 1000, words) == (turns, 0)
    assert fit_history(turns, 10, words) == ([], 5)
    app, chat = _app(data_dir=tmp_path, history_token_budget=100)
    body = {"question": "And then?", "retrieval": False, "history": turns}
    answer = TestClient(app).post("/api/ask", json=body).json()
    assert answer["warnings"] == ["The conversation is long: the model read only its last 2 turns."]
    assert [m["content"] for m in chat.prompts[0][1:-1]] == [text for turn in turns[-2:] for text in turn]


def test_the_json_route_stops_its_work_when_the_client_leaves() -> None:
    """`pumped` with `gone` set stops the generator at its next piece and closes it; an error is
    raised in the request."""
    closed = threading.Event()

    def forever() -> Iterator[int]:
        try:
            n = 0
            while True:
                time.sleep(0.05)
                n += 1
                yield n
        finally:
            closed.set()

    async def consume() -> list[int]:
        gone = threading.Event()
        got = []
        async for n in pumped(forever(), gone):
            got.append(n)
            if n == 3:
                gone.set()
        return got

    assert asyncio.run(consume())[:3] == [1, 2, 3]
    assert closed.wait(1.0)

    def failing() -> Iterator[int]:
        yield 1
        raise ValueError("boom")

    async def consume_failing() -> None:
        async for _ in pumped(failing()):
            pass

    with pytest.raises(ValueError, match="boom"):
        asyncio.run(consume_failing())


def test_records_and_exports_are_private(tmp_path: Path) -> None:
    records = Records(tmp_path / "data")
    records.feedback({"liked": True})
    records.remember("alice", {"question": "Q", "answer": "A"})
    old = records.export({"conversation.md": "old"})
    os.utime(old[0].parent, (time.time() - EXPORTS_KEPT_SECONDS - 1,) * 2)
    new = records.export({"conversation.md": "# Q", "../conversation.json": "{}"})
    assert not old[0].parent.exists()  # older exports are removed at the next one
    assert [p.name for p in new] == ["conversation.md", "conversation.json"] and new[0].read_text() == "# Q"
    data = tmp_path / "data"
    paths = [data, data / "history", data / "exports", new[0].parent, data / "feedback.jsonl", *new]
    paths += list((data / "history").iterdir())
    for path in paths:
        assert stat.S_IMODE(path.stat().st_mode) == (0o700 if path.is_dir() else 0o600), path
