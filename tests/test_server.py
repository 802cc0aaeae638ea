"""The JSON API and health routes of a real `tutor serve` (uvicorn, the real model and index)."""

from __future__ import annotations

from pathlib import Path

import httpx

from .conftest import sse_events

ASK = {"question": "What are the five layers of AI model training?"}


def test_health_and_readiness(server: tuple[str, Path]) -> None:
    url = server[0]
    assert httpx.get(url + "healthz").json() == {"status": "ok"}
    ready = httpx.get(url + "readyz").json()
    assert ready["status"] == "ready" and ready["model"].startswith("qwen2.5") and ready["corpus_version"]
    spec = httpx.get(url + "openapi.json").json()
    assert {"/api/ask", "/api/ask/stream", "/healthz", "/readyz"} <= set(spec["paths"])


def test_ask_returns_the_json_contract(server: tuple[str, Path]) -> None:
    answer = httpx.post(server[0] + "api/ask", json=ASK, timeout=120).json()
    assert {"question", "answer", "sources", "attribution", "sentences", "in_scope", "timings"} <= set(answer)
    assert answer["in_scope"] is True and answer["sources"] and "pre" in answer["answer"].lower()
    assert answer["attribution"]["retrieval"] > 0.5 and answer["timings"]["explain_s"] is not None
    alone = httpx.post(server[0] + "api/ask", json={**ASK, "retrieval": False}, timeout=120).json()
    assert alone["sources"] == [] and alone["attribution"]["retrieval"] == 0.0


def test_stream_sends_tokens_then_the_answer_then_its_attribution(server: tuple[str, Path]) -> None:
    with httpx.stream("POST", server[0] + "api/ask/stream", json=ASK, timeout=120) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = sse_events(response)
    names = [name for name, _ in events]
    assert names[-2:] == ["answer", "attribution"] and names.count("token") > 3
    text = "".join(str(data["text"]) for name, data in events if name == "token")
    assert text.strip() == events[-2][1]["answer"]
    assert events[-2][1]["attribution"] is None and events[-1][1]["attribution"] is not None


def test_bad_requests_are_clear_json_errors(server: tuple[str, Path]) -> None:
    url = server[0]
    for body, status, message in [
        ({"question": "   "}, 422, "question: only spaces: write a question"),
        ({"question": ""}, 422, "question: String should have at least 1 character"),
        ({"question": "x" * 3000}, 422, "question: String should have at most 2000 characters"),
        ({**ASK, "preset": "nope"}, 422, "preset: Input should be 'beginner'"),
        ({**ASK, "k": 0}, 422, "k: Input should be greater than or equal to 1"),
        ({"question": 42}, 422, "question: Input should be a valid string"),
        ({**ASK, "colour": "red"}, 422, "colour: Extra inputs are not permitted"),
    ]:
        for route in ("api/ask", "api/ask/stream"):
            response = httpx.post(url + route, json=body, timeout=60)
            assert response.status_code == status, (route, body, response.text)
            assert response.json()["error"].startswith("invalid request: ") and message in response.text
    assert httpx.get(url + "healthz").status_code == 200  # still answering
