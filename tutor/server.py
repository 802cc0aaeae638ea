"""One HTTP server: the Gradio page at /, the embeddable chat at /embed, a JSON API under /api.

The API is a thin front end on `Tutor`: `POST /api/ask` returns the JSON contract of DESIGN.md,
`POST /api/ask/stream` streams the same as server-sent events (`queued`, `token`, `answer`, then
`attribution`). A TutorError is a 400 with `{"error": "..."}`, a full line of waiting questions a
503. `Guard` stands in front of every route: request size, auth, and the headers that say who may
frame the page.
"""

# No `from __future__ import annotations` here: FastAPI reads the routes' annotations at runtime,
# and the request model is built per server (its limits and preset names come from the settings).
import asyncio
import contextlib
import hmac
import html
import ipaddress
import itertools
import json
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, MutableMapping
from hashlib import sha256
from typing import Any, Literal
from urllib.parse import quote, urlsplit

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator
from pydantic_core import PydanticCustomError
from starlette.exceptions import HTTPException as StarletteHTTPException

from .answer import Answer, Tutor
from .api_docs import docs_html
from .errors import BusyError, ConfigError, IndexMissingError, TutorError
from .gate import Queued
from .gradio_guard import GradioGuard
from .ops import Ops
from .prompts import NO_PRESET

PUBLIC_ROUTES = ("/healthz", "/readyz", "/login", "/logout")  # /logout only forgets a cookie
# The page takes no files: Gradio's upload route would let anyone store files on the server.
BLOCKED_SUFFIXES = ("/gradio_api/upload",)
# Plain text with at least one character that is not a space (the rule of answer.check_question).
_CONTROL = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f"
PLAIN_TEXT = f"^[^{_CONTROL}]*[^\\s{_CONTROL}][^{_CONTROL}]*$"
HISTORY_LIMIT = 100  # turns a request may carry; more is a client bug, not a conversation
USER_HEADER = b"x-tutor-user"  # set by Guard for the app, never taken from the client
SESSION_COOKIE = "tutor_session"
LOOPBACK = ("127.0.0.1", "::1", "localhost")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class AskFields(BaseModel):
    """What /api/ask takes; `ask_request_model` adds this server's limits and preset names."""

    model_config = ConfigDict(extra="forbid")

    question: str
    history: list[tuple[str, str]] = Field(default_factory=list)
    preset: str | None = None
    retrieval: bool = True
    k: int | None = None

    @field_validator("k", mode="before")
    @classmethod
    def _k_is_not_a_boolean(cls, value: Any) -> Any:
        """Pydantic takes `true` as 1; the schema's integer does not (7.0 it does, so not strict)."""
        if isinstance(value, bool):
            raise PydanticCustomError("int_type", "Input should be a valid integer")
        return value


def ask_request_model(max_question_chars: int, presets: list[str]) -> type[AskFields]:
    """The request of /api/ask, with the limits and presets of this server in its schema."""
    fields: dict[str, Any] = {
        "question": (
            str,
            Field(
                min_length=1,
                max_length=max_question_chars,
                pattern=PLAIN_TEXT,
                description="The question: plain text (no control characters), not blank, at most "
                "max_question_chars characters.",
            ),
        ),
        "history": (
            list[tuple[str, str]],
            Field(
                default_factory=list,
                max_length=HISTORY_LIMIT,
                description="Earlier turns as [user, assistant]; the model sees the last max_history_turns.",
            ),
        ),
        "preset": (
            Literal[tuple(presets)] | None,
            Field(None, description="A system prompt preset; `none` for a neutral one; default: the server's."),
        ),
        # Strict: pydantic would otherwise take "yes" as true, which the schema refuses.
        "retrieval": (bool, Field(True, strict=True, description="Use passages from the guides.")),
        "k": (int | None, Field(None, ge=1, le=20, description="Most passages in the prompt.")),
    }
    return create_model("AskRequest", __base__=AskFields, **fields)


class ErrorBody(BaseModel):
    """What every refused request gets: one line saying why."""

    error: str


class SourceBody(BaseModel):
    n: int
    guide: str
    path: str
    section: str
    text: str
    score: float
    planted: list[str] = Field(default_factory=list, description="Sentences left out of the prompt (injection).")


class SentenceBody(BaseModel):
    text: str
    supported_by: list[int]
    support: float | None
    layers: dict[str, float] | None


class AnswerBody(BaseModel):
    """The JSON contract of DESIGN.md: the answer, its sources, and the layers that shaped it."""

    question: str
    answer: str
    sources: list[SourceBody]
    attribution: dict[str, float | str] | None
    attribution_error: str | None = None
    sentences: list[SentenceBody]
    in_scope: bool | None
    warnings: list[str] = Field(default_factory=list, description="Prompt injection noticed, in plain words.")
    timings: dict[str, float | None]
    model: str
    preset: str
    corpus_version: str
    query: str
    retrieval: bool
    prompt: list[dict[str, str]]


REFUSALS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "The question cannot be asked."},
    401: {"model": ErrorBody, "description": "A token is needed (TUTOR_AUTH_TOKEN is set)."},
    413: {"model": ErrorBody, "description": "The request body is over max_request_bytes."},
    422: {
        "model": ErrorBody,
        "description": "The request does not fit the schema (blank question, unknown preset...).",
    },
    503: {"model": ErrorBody, "description": "The line of waiting questions is full, or the index is unavailable."},
}


def _options(request: AskFields) -> dict[str, Any]:
    return {"preset": request.preset, "retrieval": request.retrieval, "k": request.k}


def _event(name: str, data: Any) -> str:
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


_END = object()


async def pumped(blocking: Iterator[str]) -> AsyncIterator[str]:
    """A blocking generator run in a thread of its own, closed soon after the client goes away.

    Left to Starlette, a generator whose client disconnected stays suspended and keeps its place
    at the model (tutor.gate) for ever. Here the thread stops at the next piece and closes it.
    A thread per stream, not a shared pool: a pool's workers could all be waiting in the line
    while the stream that holds the model waits for a worker (the gate bounds the threads).
    """
    loop = asyncio.get_running_loop()
    pieces: asyncio.Queue[Any] = asyncio.Queue()
    stop = threading.Event()

    def put(item: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the event loop is gone: the server is stopping
            loop.call_soon_threadsafe(pieces.put_nowait, item)

    def pump() -> None:
        try:
            for item in blocking:
                put(item)
                if stop.is_set():
                    break
        finally:
            close = getattr(blocking, "close", None)
            if close is not None:
                close()
            put(_END)

    threading.Thread(target=pump, name="tutor-stream", daemon=True).start()
    try:
        while (item := await pieces.get()) is not _END:
            yield item
    finally:
        stop.set()


def session_value(token: str) -> str:
    """What the login cookie holds: derived from the token, so the token itself is not stored."""
    return hmac.new(token.encode(), b"tutor session", sha256).hexdigest()


def signed_in_as(headers: dict[bytes, bytes]) -> str | None:
    """Who sent a request that Guard let through: the SSO user, else the holder of a sign-in cookie."""
    user = headers.get(USER_HEADER)
    if user:
        return "user:" + user.decode("latin-1")
    for part in headers.get(b"cookie", b"").split(b";"):
        name, _, value = part.strip().partition(b"=")
        if name == SESSION_COOKIE.encode() and value:
            return "cookie:" + value.decode("latin-1")
    return None


def _json_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


class Guard:
    """ASGI middleware in front of every route: body size, identity, auth, and security headers.

    - Gradio's upload route is closed: the page has no file inputs.
    - A body over `max_request_bytes` is refused with 413 before the app reads it.
    - The user is named by `trusted_user_header` only when the request comes straight from a
      trusted proxy address; the app reads it from `x-tutor-user`, which clients cannot set.
    - With `auth_token`, a request needs the bearer token, the login cookie, or a trusted user;
      a browser asking for a page is sent to the login form, anything else gets 401.
    """

    def __init__(self, app: Any, settings: Any, on_response: Callable[[int], None] | None = None) -> None:
        self.app = app
        self.settings = settings
        self.token = settings.auth_token.get_secret_value() if settings.auth_token else None
        self.session = session_value(self.token) if self.token else None
        self.user_header = settings.trusted_user_header.lower().encode() if settings.trusted_user_header else None
        self.proxies = [ipaddress.ip_network(p, strict=False) for p in settings.trusted_proxies]
        ancestors = " ".join(settings.frame_ancestors) or "'none'"
        self.security_headers = [
            (b"content-security-policy", f"frame-ancestors {ancestors}".encode()),
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"same-origin"),
        ]
        self.on_response = on_response

    def _from_proxy(self, scope: Scope) -> bool:
        client = scope.get("client")
        try:
            address = ipaddress.ip_address(client[0]) if client else None
        except ValueError:
            return False
        return address is not None and any(address in network for network in self.proxies)

    def _identify(self, scope: Scope) -> tuple[list[tuple[bytes, bytes]], str | None]:
        headers = [(k, v) for k, v in scope.get("headers", []) if k != USER_HEADER]
        user = None
        if self.user_header and self._from_proxy(scope):
            named = next((v for k, v in headers if k == self.user_header), b"").decode("latin-1").strip()
            user = named[:200] or None
        if user:
            headers.append((USER_HEADER, user.encode("latin-1")))
        return headers, user

    def _authorised(self, found: dict[bytes, bytes], user: str | None) -> bool:
        """Compared as bytes: a header with any bytes at all is refused, never an error."""
        if self.token is None or user:
            return True
        bearer = found.get(b"authorization", b"")
        if bearer[:7].lower() == b"bearer " and hmac.compare_digest(bearer[7:].strip(), self.token.encode()):
            return True
        for part in found.get(b"cookie", b"").split(b";"):
            name, _, value = part.strip().partition(b"=")
            if name == SESSION_COOKIE.encode() and self.session and hmac.compare_digest(value, self.session.encode()):
                return True
        return False

    def _too_large(self) -> Response:
        return _json_response(413, f"the request is larger than {self.settings.max_request_bytes} bytes")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        root = scope.get("root_path", "")
        path = scope["path"][len(root) :] if root and scope["path"].startswith(root) else scope["path"]
        headers, user = self._identify(scope)
        scope = {**scope, "headers": headers}

        async def send_with_headers(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *self.security_headers]}
                if self.on_response:
                    self.on_response(int(message["status"]))
            await send(message)

        async def refuse(response: Response) -> None:
            await response(scope, receive, send_with_headers)

        found = dict(headers)
        if scope["type"] == "http":
            length = found.get(b"content-length", b"0")
            if not length.isdigit() or int(length) > self.settings.max_request_bytes:
                await refuse(self._too_large())
                return
        if path.endswith(BLOCKED_SUFFIXES):
            await refuse(_json_response(404, "not found"))
            return
        if path not in PUBLIC_ROUTES and not self._authorised(found, user):
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            accepts_html = b"text/html" in found.get(b"accept", b"")
            if scope["method"] == "GET" and accepts_html:
                await refuse(RedirectResponse(f"{root}/login?next={quote(path)}", status_code=303))
            else:
                await refuse(
                    _json_response(
                        401,
                        "this tutor needs a token: send Authorization: Bearer TOKEN",
                        {"WWW-Authenticate": 'Bearer realm="tutor"'},
                    )
                )
            return
        if scope["type"] == "http" and b"content-length" not in found:
            buffered = await self._buffered(receive)
            if buffered is None:
                await refuse(self._too_large())
                return
            receive = buffered
        await self.app(scope, receive, send_with_headers)

    async def _buffered(self, receive: Receive) -> Receive | None:
        """A chunked body has no length to check first: read it up to the limit, then replay it."""
        parts: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            parts.append(message.get("body", b""))
            size += len(parts[-1])
            if size > self.settings.max_request_bytes:
                return None
            if not message.get("more_body"):
                break
        replay = [{"type": "http.request", "body": b"".join(parts), "more_body": False}]

        async def replayed() -> MutableMapping[str, Any]:
            return replay.pop() if replay else await receive()

        return replayed


LOGIN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Tutor: sign in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font-family:"Source Sans Pro",system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;background:#f9fafb;
color:#1f2937}}main{{max-width:26em;margin:3em auto;padding:1.4em 1.6em;background:#fff;border:1px solid #e5e7eb;
border-radius:12px;box-shadow:0 1px 3px rgba(0,0,0,.06)}}h1{{font-size:1.35em;margin:0 0 .3em}}
label{{display:block;font-size:.9em;color:#4b5563;margin:.8em 0 .3em}}
input{{display:block;width:100%;font-size:1.05em;padding:.55em .7em;box-sizing:border-box;border:1px solid #d1d5db;
border-radius:8px}}button{{display:block;width:100%;margin-top:1em;font-size:1.05em;font-weight:600;padding:.6em;
border:0;border-radius:8px;background:#f97316;color:#fff;cursor:pointer}}button:hover{{background:#ea580c}}
.error{{color:#b00020;font-weight:600}}
.layers{{display:flex;height:.5em;border-radius:4px;overflow:hidden;margin:.2em 0 1em}}
.layers span{{flex:1}}</style></head>
<body><main><h1>Tutor: how AI language models are trained</h1>
<div class="layers" aria-hidden="true"><span style="background:#0072B2"></span><span style="background:#E69F00">
</span><span style="background:#6E6E6E"></span></div>
<p>Answers come from the guides. Sign in with the access token your administrator gave you.</p>
{error}<form method="post" action="{action}"><input type="hidden" name="next" value="{next}">
<label for="token">Access token</label>
<input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
<button type="submit">Sign in</button></form></main></body></html>
"""


def _local_path(next_path: str) -> str:
    """Only a path on this server, so that the login form cannot send anyone elsewhere."""
    parts = urlsplit(next_path)
    if parts.scheme or parts.netloc or not next_path.startswith("/") or next_path.startswith("//"):
        return "/"
    return next_path


def create_app(tutor: Tutor, *, with_page: bool = False) -> FastAPI:
    """The whole server: API, health, metrics, login, and (with_page) the Gradio page and embed."""
    settings = tutor.settings
    ops = Ops(settings, waiting=lambda: tutor.gate.waiting, busy=lambda: tutor.gate.busy)
    app = FastAPI(
        title="tutor",
        description="Answers from the guides, with the layer that shaped each.",
        docs_url=None,  # /docs below: Swagger UI and ReDoc load their scripts from a CDN
        redoc_url=None,
    )
    app.state.ops = ops
    ask_body = ask_request_model(settings.max_question_chars, [*tutor.presets, NO_PRESET.name])

    @app.exception_handler(StarletteHTTPException)
    def http_error(_: Any, exc: StarletteHTTPException) -> Response:  # e.g. a body that is not JSON
        return _json_response(exc.status_code, str(exc.detail), dict(exc.headers or {}))

    @app.exception_handler(RequestValidationError)
    def invalid_request(_: Any, exc: RequestValidationError) -> Response:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'] if p != 'body') or 'body'}: {err['msg']}" for err in exc.errors()[:5]
        )
        return _json_response(422, f"invalid request: {problems}")

    @app.exception_handler(BusyError)
    def busy_error(_: Any, exc: BusyError) -> Response:
        return _json_response(503, str(exc), {"Retry-After": "30"})

    @app.exception_handler(IndexMissingError)
    def index_missing(_: Any, exc: IndexMissingError) -> Response:  # no index, or its server is down
        return _json_response(503, str(exc))

    @app.exception_handler(TutorError)
    def tutor_error(_: Any, exc: TutorError) -> Response:
        return _json_response(400, str(exc))

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        """The process is alive."""
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz() -> JSONResponse:
        """The index and the model are loaded: questions can be answered."""
        retriever = tutor.retriever
        engines = {"model": tutor.chat.name, "llm_url": settings.llm_url, "chroma_url": settings.chroma_url}
        if retriever is None or not retriever.chunk_count:
            return JSONResponse({"status": "no index", **engines}, status_code=503)
        return JSONResponse({"status": "ready", **engines, "corpus_version": retriever.corpus_version})

    @app.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
    def metrics() -> Response:
        """Prometheus metrics: questions by outcome, latencies, layer shares, the queue."""
        return Response(ops.metrics.exposition(), media_type="text/plain; version=0.0.4")

    def ask(body: AskFields, request: Request) -> dict[str, Any]:
        """The whole answer with its sources and layer attribution (the JSON contract)."""
        started, user = time.perf_counter(), request.headers.get(USER_HEADER.decode())
        try:
            answer = tutor.ask(body.question, body.history, **_options(body)).to_dict()
        except TutorError as exc:
            ops.question_done("api", started=started, error=exc, user=user, question=body.question)
            raise
        ops.question_done("api", started=started, answer=answer, user=user, question=body.question)
        return answer

    def ask_stream(body: AskFields, request: Request) -> StreamingResponse:
        """Server-sent events: `queued` while waiting, `token` pieces, the `answer`, then its
        `attribution` (or an `error`)."""
        started, user = time.perf_counter(), request.headers.get(USER_HEADER.decode())
        stream = tutor.stream(body.question, body.history, explain=True, **_options(body))
        try:
            first = next(stream)  # a bad question or a full line fails here, before the stream starts
        except TutorError as exc:
            ops.question_done("stream", started=started, error=exc, user=user, question=body.question)
            raise

        def events() -> Iterator[str]:
            def done(**outcome: Any) -> None:
                ops.question_done("stream", started=started, user=user, question=body.question, **outcome)

            finished = False
            try:
                answers: list[dict[str, Any]] = []
                for item in itertools.chain((first,), stream):
                    if isinstance(item, Answer):
                        answers.append(item.to_dict())
                        yield _event("answer" if len(answers) == 1 else "attribution", answers[-1])
                    elif isinstance(item, Queued):
                        yield _event("queued", {"ahead": item.ahead})
                    else:
                        yield _event("token", {"text": item})
                finished = True
                done(answer=answers[-1])  # after the stream ended: the model is free again
            except TutorError as exc:
                finished = True
                done(error=exc)
                yield _event("error", {"error": str(exc)})
            finally:
                if not finished:
                    done(outcome="left")

        return StreamingResponse(
            pumped(events()), media_type="text/event-stream", headers={"Cache-Control": "no-store"}
        )

    for handler in (ask, ask_stream):  # FastAPI validates and documents this server's request model
        handler.__annotations__["body"] = ask_body
    app.post("/api/ask", responses={200: {"model": AnswerBody}, **REFUSALS})(ask)
    app.post(
        "/api/ask/stream",
        response_class=StreamingResponse,
        responses={200: {"content": {"text/event-stream": {}}, "description": "Server-sent events."}, **REFUSALS},
    )(ask_stream)

    @app.get("/api/history")
    def history(request: Request) -> dict[str, Any]:
        """The signed-in user's earlier answers (a user is known behind an SSO proxy)."""
        user = request.headers.get(USER_HEADER.decode())
        return {"user": user, "history": ops.records.history(user)}

    @app.get("/login", response_class=HTMLResponse, include_in_schema=False)
    def login_form(request: Request, next: str = "/") -> HTMLResponse:  # noqa: A002 (the query name)
        return _login_page(request, next, "")

    @app.post("/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        form = await request.form()
        token, next_path = str(form.get("token", "")), _local_path(str(form.get("next", "/")))
        expected = settings.auth_token.get_secret_value() if settings.auth_token else ""
        if not expected or not hmac.compare_digest(token, expected):
            return _login_page(request, next_path, "That token is not right.", status=401)
        root = request.scope.get("root_path", "")
        response = RedirectResponse(f"{root}{next_path}", status_code=303)
        response.set_cookie(SESSION_COOKIE, session_value(expected), httponly=True, samesite="lax", path=root or "/")
        return response

    @app.get("/docs", response_class=HTMLResponse, include_in_schema=False)
    def docs(request: Request) -> HTMLResponse:
        """The API's reference, from this server's schema, with nothing loaded from elsewhere."""
        return HTMLResponse(docs_html(app.openapi(), request.scope.get("root_path", "") + "/openapi.json"))

    @app.get("/logout", include_in_schema=False)
    def logout(request: Request) -> Response:
        """Forget the sign-in cookie; back to the sign-in form (or the page, when no token is set)."""
        root = request.scope.get("root_path", "")
        response = RedirectResponse(f"{root}/login" if settings.auth_token else f"{root}/", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path=root or "/", httponly=True, samesite="lax")
        return response

    if with_page:  # inside Guard: it sees the user that Guard named
        app.add_middleware(GradioGuard, identity=signed_in_as)
    app.add_middleware(Guard, settings=settings, on_response=lambda code: ops.metrics.responses.labels(str(code)).inc())
    if settings.cors_origins:  # outside Guard, so that a preflight needs no token
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
            max_age=600,
        )
    if with_page:
        import gradio as gr

        from .ui import CSS, HEAD, build_ui

        page = {"css": CSS, "head": HEAD, "show_error": False, "footer_links": []}  # no Gradio footer
        gr.mount_gradio_app(app, build_ui(tutor, ops, embed=True), path="/embed", **page)
        gr.mount_gradio_app(app, build_ui(tutor, ops), path="/", **page)
    return app


def _login_page(request: Request, next_path: str, error: str, status: int = 200) -> HTMLResponse:
    root = request.scope.get("root_path", "")
    return HTMLResponse(
        LOGIN_PAGE.format(
            action=html.escape(f"{root}/login"),
            next=html.escape(_local_path(next_path)),
            error=f'<p class="error" role="alert">{html.escape(error)}</p>' if error else "",
        ),
        status_code=status,
    )


def check_exposure(settings: Any, host: str) -> None:
    """Refuse to serve an open tutor beyond this machine unless that is asked for."""
    if host in LOOPBACK or settings.auth_token or settings.trusted_user_header or settings.open_access:
        return
    raise ConfigError(
        f"refusing to serve on {host} without auth: set TUTOR_AUTH_TOKEN (or TUTOR_TRUSTED_USER_HEADER "
        "behind an SSO proxy), or TUTOR_OPEN_ACCESS=true to serve it open"
    )


def frame_ancestors(settings: Any) -> str:
    """The CSP frame-ancestors that Guard sends: the pages that may frame the tutor. A frame from
    any other origin fails in the browser alone (its console says why), so `serve` logs it."""
    return " ".join(settings.frame_ancestors) or "'none'"


def serve(tutor: Tutor, host: str, port: int, root_path: str = "") -> None:
    """The API and the page on one uvicorn server; `root_path` when a proxy serves it at a sub-path."""
    import uvicorn

    check_exposure(tutor.settings, host)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    log = logging.getLogger("tutor.requests")
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    log.info(json.dumps({"event": "start", "frame_ancestors": frame_ancestors(tutor.settings)}))
    uvicorn.run(
        create_app(tutor, with_page=True),
        host=host,
        port=port,
        root_path=root_path,
        log_level="warning",
        proxy_headers=False,  # the client address must be the peer's, for trusted_proxies
    )
