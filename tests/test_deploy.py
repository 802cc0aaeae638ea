"""The intranet settings on a real `tutor serve` (the `guarded` one of conftest): auth, the SSO user
header, CORS, framing, the line of waiting questions, limits, logs and metrics."""

from __future__ import annotations

import contextlib
import json
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx

from tutor.web.guard import SESSION_COOKIE, SESSION_SECONDS, issue_session, session_key

from .conftest import INTRANET, TOKEN, sse_events

BEARER = {"Authorization": f"Bearer {TOKEN}"}
ASK = {"question": "What is RLHF?"}
LONG = {"question": "Explain the five layers of AI model training in detail."}


def _protected_routes(url: str) -> list[tuple[str, str]]:
    spec = httpx.get(url + "openapi.json", headers=BEARER).json()
    routes = [(method.upper(), path) for path, methods in spec["paths"].items() for method in methods]
    page = [("GET", "/"), ("GET", "/embed/"), ("GET", "/config"), ("GET", "/gradio_api/info"), ("GET", "/docs")]
    return [r for r in routes if r[1] not in ("/healthz", "/readyz")] + page


def test_every_route_but_health_needs_the_token(guarded: tuple[str, Path]) -> None:
    url = guarded[0]
    routes = _protected_routes(url)
    assert ("POST", "/api/ask") in routes and ("GET", "/metrics") in routes
    for method, path in routes:
        response = httpx.request(method, url + path.lstrip("/"), json=ASK if method == "POST" else None)
        assert response.status_code == 401, (method, path, response.status_code)
        assert response.json()["error"].startswith("this tutor needs a token")
        wrong = httpx.request(method, url + path.lstrip("/"), headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401, (method, path)
    for odd in (b"Bearer \xe9t\xe9", b"Bearer", b"Basic abc"):  # refused, not a 500
        assert httpx.get(url + "metrics", headers={"Authorization": odd}).status_code == 401, odd
    assert httpx.get(url + "metrics", headers={"Authorization": f"bearer {TOKEN}"}).status_code == 200
    odd_cookie = httpx.get(url + "metrics", headers={"Cookie": b"tutor_session=\xff\xfe; x=1"})
    assert odd_cookie.status_code == 401
    for path in ("healthz", "readyz"):
        assert httpx.get(url + path).status_code == 200
    for path in ("", "embed/", "metrics", "api/history", "docs"):
        assert httpx.get(url + path, headers=BEARER).status_code == 200, path


def test_a_browser_is_sent_to_the_login_form_and_its_cookie_works(guarded: tuple[str, Path]) -> None:
    url = guarded[0]
    with httpx.Client(base_url=url, headers={"Accept": "text/html"}) as browser:
        first = browser.get("embed/")
        assert first.status_code == 303 and first.headers["location"] == "/login?next=/embed/"
        form = browser.get(first.headers["location"])
        assert form.status_code == 200 and 'type="password"' in form.text
        refused = browser.post("login", data={"token": "guess", "next": "/embed/"})
        assert refused.status_code == 401 and "not right" in refused.text and not browser.cookies
        accepted = browser.post("login", data={"token": TOKEN, "next": "https://evil.example/"})
        assert accepted.status_code == 303 and accepted.headers["location"] == "/"  # no open redirect
        assert TOKEN not in accepted.headers["set-cookie"] and "HttpOnly" in accepted.headers["set-cookie"]
        assert browser.get("embed/").status_code == 200
        assert browser.get("metrics").status_code == 200


def test_a_trusted_sso_user_needs_no_token_and_gets_a_history(guarded: tuple[str, Path]) -> None:
    url = guarded[0]
    alice = {"X-Forwarded-User": "alice@example.org"}
    answer = httpx.post(url + "api/ask", json=ASK, headers=alice, timeout=120)
    assert answer.status_code == 200 and answer.json()["in_scope"] is True
    history = httpx.get(url + "api/history", headers=alice).json()
    assert history["user"] == "alice@example.org"
    assert [item["question"] for item in history["history"]] == ["What is RLHF?"]
    assert history["history"][0]["attribution"]["retrieval"] > 0
    bob = httpx.get(url + "api/history", headers={"X-Forwarded-User": "bob"}).json()
    assert bob == {"user": "bob", "history": []}
    assert httpx.get(url + "api/history", headers=BEARER).json() == {"user": None, "history": []}
    # Clients cannot name themselves with the header the app reads.
    assert httpx.get(url + "api/history", headers={"X-Tutor-User": "alice@example.org"}).status_code == 401


def test_cors_and_framing_follow_the_settings(guarded: tuple[str, Path], server: tuple[str, Path]) -> None:
    url = guarded[0]
    preflight = {
        "Origin": INTRANET,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization",
    }
    allowed = httpx.options(url + "api/ask", headers=preflight)
    assert allowed.status_code == 200 and allowed.headers["access-control-allow-origin"] == INTRANET
    other = httpx.options(url + "api/ask", headers={**preflight, "Origin": "https://elsewhere.example"})
    assert "access-control-allow-origin" not in other.headers
    page = httpx.get(url + "embed/", headers=BEARER)
    assert page.headers["content-security-policy"] == f"frame-ancestors 'self' {INTRANET}"
    # The default server: no CORS at all, and framed only by its own pages.
    closed = httpx.options(server[0] + "api/ask", headers=preflight)
    assert "access-control-allow-origin" not in closed.headers
    assert httpx.get(server[0]).headers["content-security-policy"] == "frame-ancestors 'self'"


def test_request_size_limit(guarded: tuple[str, Path]) -> None:
    url = guarded[0]
    big = {"question": "x" * 30_000}
    response = httpx.post(url + "api/ask", json=big, headers=BEARER)
    assert response.status_code == 413 and "larger than 20000 bytes" in response.json()["error"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        yield b'{"question": "'
        for _ in range(30):
            yield b"x" * 1000
        yield b'"}'

    chunked = httpx.post(url + "api/ask", content=chunks(), headers={**BEARER, "Content-Type": "application/json"})
    assert chunked.status_code == 413
    assert httpx.get(url + "healthz").status_code == 200


def _stream_events(url: str, results: list[list[tuple[str, dict[str, object]]]], index: int) -> None:
    events: list[tuple[str, dict[str, object]]] = []
    with httpx.stream("POST", url + "api/ask/stream", json=LONG, headers=BEARER, timeout=300) as response:
        if response.status_code != 200:
            response.read()
            events.append((f"http {response.status_code}", response.json()))
        else:
            events = sse_events(response)
    results[index] = events


def test_a_busy_model_queues_one_question_and_refuses_the_next(guarded: tuple[str, Path]) -> None:
    """One answering, one waiting (TUTOR_MAX_WAITING=1): the third is told the line is full."""
    url = guarded[0]
    results: list[list[tuple[str, dict[str, object]]]] = [[] for _ in range(3)]
    threads = []
    for index in range(3):
        thread = threading.Thread(target=_stream_events, args=(url, results, index))
        thread.start()
        threads.append(thread)
        if index < 2:  # let the first hold the model and the second join the line
            wait_until_busy = 0
            while wait_until_busy < 200:
                metrics = httpx.get(url + "metrics", headers=BEARER).text
                if "tutor_model_busy 1.0" in metrics and (index == 0 or "tutor_queue_waiting 1.0" in metrics):
                    break
                wait_until_busy += 1
                threading.Event().wait(0.05)
    for thread in threads:
        thread.join(timeout=300)
    refused = [events for events in results if events[0][0] == "http 503"]
    assert len(refused) == 1, [events[:2] for events in results]
    assert "busy" in str(refused[0][0][1]["error"])
    answered = [events for events in results if events and events[-1][0] == "attribution"]
    assert len(answered) == 2
    queued = [events for events in answered if events[0][0] == "queued"]
    assert len(queued) == 1 and queued[0][0][1] == {"ahead": 1}
    metrics = httpx.get(url + "metrics", headers=BEARER).text
    assert 'tutor_questions_total{front_end="stream",outcome="busy"} 1.0' in metrics
    assert "tutor_queue_waiting 0.0" in metrics and "tutor_model_busy 0.0" in metrics


def test_a_client_that_leaves_frees_its_place(guarded: tuple[str, Path]) -> None:
    url = guarded[0]
    with httpx.stream("POST", url + "api/ask/stream", json=ASK, headers=BEARER, timeout=60) as response:
        for line in response.iter_lines():
            if line.startswith("event: token"):
                break  # hang up mid-answer
    for _ in range(100):
        if "tutor_model_busy 0.0" in httpx.get(url + "metrics", headers=BEARER).text:
            break
        threading.Event().wait(0.1)
    else:
        raise AssertionError("the model stayed busy after its client left")
    answer = httpx.post(url + "api/ask", json=ASK, headers=BEARER, timeout=120)
    assert answer.status_code == 200


def test_one_log_line_per_question(guarded: tuple[str, Path], server: tuple[str, Path]) -> None:
    """The guarded server logs question text (--log-questions); the default one never does."""
    httpx.post(server[0] + "api/ask", json={"question": "What is a base model?"}, timeout=120)
    lines = [json.loads(line) for line in (guarded[1] / "serve.log").read_text().splitlines() if line.startswith("{")]
    answered = [line for line in lines if line.get("outcome") == "answered"]
    assert answered and all(line["question"] for line in answered)
    assert {ASK["question"], LONG["question"]} <= {line["question"] for line in answered}
    assert {"latency_s", "layers", "in_scope", "first_token_s"} <= set(answered[0])
    assert any(line.get("user") == "alice@example.org" for line in answered)
    default_log = (server[1].parent / "serve.log").read_text()
    default_lines = [json.loads(line) for line in default_log.splitlines() if line.startswith('{"event"')]
    assert default_lines and all("question" not in line for line in default_lines)
    assert "What is a base model?" not in default_log


def test_serving_beyond_loopback_needs_auth(tmp_path: Path) -> None:
    command = [sys.executable, "-c", "from tutor.cli import main; main()", "serve", "--host", "0.0.0.0"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode != 0 and "refusing to serve on 0.0.0.0 without auth" in result.stderr
    assert "Traceback" not in result.stderr


def _metric(url: str, name: str) -> float:
    for line in httpx.get(url + "metrics", headers=BEARER).text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no metric {name}")


def _wait_for(condition: Callable[[], bool], seconds: float) -> float:
    """Seconds until `condition` held; an AssertionError if it did not within `seconds`."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > seconds:
            raise AssertionError(f"not within {seconds} s")
        time.sleep(0.05)
    return time.monotonic() - started


def _abandon(url: str, body: dict[str, str], after: float) -> None:
    with contextlib.suppress(httpx.TimeoutException):
        httpx.post(url + "api/ask", json=body, headers=BEARER, timeout=after)


def _left(folder: Path) -> list[dict[str, object]]:
    """The log lines of /api/ask questions whose client left first."""
    lines = [json.loads(line) for line in (folder / "serve.log").read_text().splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("front_end") == "api" and line.get("outcome") == "left"]


def test_a_json_client_that_leaves_frees_its_place(guarded: tuple[str, Path]) -> None:
    """/api/ask gives up its place in the line, and its work, when its client leaves (issue 11,
    item 2): abandoned requests used to be answered for nobody while others were refused 503."""
    url, folder = guarded
    before = len(_left(folder))
    holder = threading.Thread(target=_stream_events, args=(url, [[]], 0))  # holds the model, connected
    holder.start()
    _wait_for(lambda: _metric(url, "tutor_model_busy") == 1.0, 60)
    leaver = threading.Thread(target=_abandon, args=(url, LONG, 2.0))  # waits in the line, then leaves
    leaver.start()
    _wait_for(lambda: _metric(url, "tutor_queue_waiting") == 1.0, 2.0)
    leaver.join()
    # Noticed within a second (the line is checked each second), logged as left, the place free.
    freed = _wait_for(lambda: len(_left(folder)) == before + 1, 2.0)
    assert _metric(url, "tutor_queue_waiting") == 0.0
    # The line (one place, TUTOR_MAX_WAITING=1) is open again: the next question is not refused.
    assert httpx.post(url + "api/ask", json=ASK, headers=BEARER, timeout=300).status_code == 200
    holder.join(timeout=300)
    # A client holding the model leaves mid-answer: the answer stops at its next token, unexplained.
    _abandon(url, LONG, 3.0)
    stopped = _wait_for(lambda: _metric(url, "tutor_model_busy") == 0.0, 20)
    assert len(_left(folder)) == before + 2 and _left(folder)[-1]["latency_s"] < 3.0 + 20  # type: ignore[operator]
    assert 'tutor_http_responses_total{code="499"} 2.0' in httpx.get(url + "metrics", headers=BEARER).text
    print(f"line freed {freed:.2f} s after its client left; the model {stopped:.2f} s after")


def test_a_sign_in_cookie_is_signed_per_sign_in_expires_and_is_secure_behind_https(guarded: tuple[str, Path]) -> None:
    """Issue 11, item 9: one fixed cookie for everyone, for ever, never Secure."""
    url = guarded[0]
    cookies = []
    for headers in ({}, {"X-Forwarded-Proto": "https"}):  # the second from a trusted proxy (loopback)
        response = httpx.post(url + "login", data={"token": TOKEN, "next": "/"}, headers=headers)
        assert response.status_code == 303
        set_cookie = response.headers["set-cookie"]
        assert "Max-Age=43200" in set_cookie and "HttpOnly" in set_cookie
        assert ("Secure" in set_cookie) == bool(headers), set_cookie
        cookies.append(response.cookies[SESSION_COOKIE])
    assert cookies[0] != cookies[1]  # a value of its own for each sign-in
    for value in cookies:
        assert httpx.get(url + "metrics", cookies={SESSION_COOKIE: value}).status_code == 200
    key = session_key(TOKEN)
    expired = issue_session(key, now=time.time() - SESSION_SECONDS - 1)
    issued, nonce, mac = cookies[0].split(".")
    for forged in (expired, f"{int(time.time()) + 3600}.{nonce}.{mac}", f"{issued}.{nonce}.{'0' * 64}", "1.2.3"):
        assert httpx.get(url + "metrics", cookies={SESSION_COOKIE: forged}).status_code == 401, forged


def test_readiness_names_the_engines_only_to_authorised_callers(guarded: tuple[str, Path]) -> None:
    """Issue 11, item 9: /readyz is public, the engines' addresses are not."""
    url = guarded[0]
    public = httpx.get(url + "readyz").json()
    assert public["status"] == "ready" and "llm_url" not in public and "chroma_url" not in public
    private = httpx.get(url + "readyz", headers=BEARER).json()
    assert {"llm_url", "chroma_url"} <= set(private)


def test_records_are_readable_by_the_server_alone(guarded: tuple[str, Path]) -> None:
    """History and feedback files 0600 in folders 0700 (issue 11, item 9)."""
    url, folder = guarded
    carol = {"X-Forwarded-User": "carol@example.org"}
    assert httpx.post(url + "api/ask", json=ASK, headers=carol, timeout=300).status_code == 200
    data = folder / "data"
    files = list((data / "history").iterdir())
    assert files
    for path in [data, data / "history", *files]:
        expected = 0o700 if path.is_dir() else 0o600
        assert stat.S_IMODE(path.stat().st_mode) == expected, (path, oct(path.stat().st_mode))
    assert stat.S_IMODE((data / "gradio").stat().st_mode) == 0o700  # Gradio's copies of the exports


def test_a_gradio_session_belongs_to_the_user_who_started_it(guarded: tuple[str, Path]) -> None:
    """Issue 11.7: with the SSO header, another user naming someone's session_hash is refused, on the
    queue, its event stream and the heartbeat; the owner goes on using it."""
    url = guarded[0]
    alice, bob = {"X-Forwarded-User": "alice@example.org"}, {"X-Forwarded-User": "bob@example.org"}
    config = httpx.get(url + "config", headers=alice, timeout=30).json()
    export = next(d for d in config["dependencies"] if d.get("api_name") == "export")
    join = {"data": [None] * len(export["inputs"]), "fn_index": export["id"], "session_hash": "alice-only"}
    assert httpx.post(url + "gradio_api/queue/join", json=join, headers=alice, timeout=30).status_code == 200
    stolen = httpx.post(url + "gradio_api/queue/join", json=join, headers=bob, timeout=30)
    assert stolen.status_code == 403 and "another user" in stolen.json()["error"]
    data = httpx.get(url + "gradio_api/queue/data", params={"session_hash": "alice-only"}, headers=bob, timeout=30)
    assert data.status_code == 403
    beat = httpx.get(url + "gradio_api/heartbeat/alice-only", headers=bob, timeout=5)
    assert beat.status_code == 403
    again = httpx.post(url + "gradio_api/queue/join", json=join, headers=alice, timeout=30)
    assert again.status_code == 200
