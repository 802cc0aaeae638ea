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
import importlib.util
import ipaddress
import itertools
import json
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, MutableMapping
from hashlib import sha256
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import quote, urlsplit

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator
from pydantic_core import PydanticCustomError
from starlette.exceptions import HTTPException as StarletteHTTPException

from .answer import Answer, Answered, Explained, Token, Tutor
from .api_docs import docs_html
from .errors import BusyError, ConfigError, IndexMissingError, TutorError
from .gate import Queued
from .gradio_guard import GradioGuard
from .ops import Ops, private_folder
from .prompts import NO_PRESET

PUBLIC_ROUTES = ("/healthz", "/readyz", "/login", "/logout")  # /logout only forgets a cookie
# The page takes no files and has no component with server functions: Gradio's routes that take
# uploads (files, screen recordings, multipart component calls) would let anyone store or send
# files to the server, and run history would make it call the Hugging Face Hub for a client.
# ... and `stream/{event_id}`, which feeds data into a running event: the page has no streaming input.
BLOCKED_ROUTES = re.compile(r"/gradio_api/(upload|process_recording|component_server|run-history/.*|stream/.*)/?$")
# Plain text with at least one character that is not a space (the rule of answer.check_question);
# a turn of the history may be blank. The schema shows the patterns; the validators check them,
# and lone surrogates (what Python makes of bytes that are not UTF-8) too, in plain words.
_CONTROL = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f"
PLAIN_TEXT = f"^[^{_CONTROL}]*[^\\s{_CONTROL}][^{_CONTROL}]*$"
TURN_TEXT = f"^[^{_CONTROL}]*$"
NOT_TEXT = re.compile(f"[{_CONTROL}\\ud800-\\udfff]")
NOT_TEXT_SAID = "not plain text: it has control characters (such as NUL), binary data or invalid UTF-8"
# An assistant turn is an answer of at most max_answer_tokens tokens; a token of English text is
# about 4 characters, and 16 leaves room for long ones (runs of spaces, code) and citation marks.
ANSWER_CHARS_PER_TOKEN = 16
HISTORY_LIMIT = 100  # turns a request may carry; more is a client bug, not a conversation
USER_HEADER = b"x-tutor-user"  # set by Guard for the app, never taken from the client
SESSION_COOKIE = "tutor_session"
LOOPBACK = ("127.0.0.1", "::1", "localhost")
AUTHORISED = "tutor.authorised"  # in the scope: whether the caller passed the token check (public routes too)
SESSION_SECONDS = 12 * 3600  # a sign-in lasts a working day
CLIENT_LEFT = 499  # the status logged for a request whose client closed the connection first (nginx's)

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
T = TypeVar("T")


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

    @field_validator("question")
    @classmethod
    def _question_is_plain_text(cls, value: str) -> str:
        """Checked here rather than by the schema's pattern, whose refusal would quote the regex."""
        if not value.strip():
            raise PydanticCustomError("blank", "only spaces: write a question")
        if NOT_TEXT.search(value):
            raise PydanticCustomError("not_text", NOT_TEXT_SAID)
        return value

    @field_validator("history")
    @classmethod
    def _turns_are_plain_text(cls, value: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """A lone surrogate reached the model's tokenizer and failed there (a 500); refused here."""
        for n, turn in enumerate(value):
            for side, text in zip(("user", "assistant"), turn, strict=True):
                if NOT_TEXT.search(text):
                    said = "turn {n}, {side} side: " + NOT_TEXT_SAID
                    raise PydanticCustomError("not_text", said, {"n": n, "side": side})
        return value


def ask_request_model(max_question_chars: int, max_answer_chars: int, presets: list[str]) -> type[AskFields]:
    """The request of /api/ask, with the limits and presets of this server in its schema."""
    user_turn = Annotated[str, Field(max_length=max_question_chars, json_schema_extra={"pattern": TURN_TEXT})]
    assistant_turn = Annotated[str, Field(max_length=max_answer_chars, json_schema_extra={"pattern": TURN_TEXT})]
    fields: dict[str, Any] = {
        "question": (
            str,
            Field(
                min_length=1,
                max_length=max_question_chars,
                json_schema_extra={"pattern": PLAIN_TEXT},
                description="The question: plain text (no control characters), not blank, at most "
                "max_question_chars characters.",
            ),
        ),
        "history": (
            list[tuple[user_turn, assistant_turn]],  # type: ignore[valid-type]
            Field(
                default_factory=list,
                max_length=HISTORY_LIMIT,
                description="Earlier turns as [user, assistant], plain text: a user turn at most max_question_chars "
                f"characters, an assistant turn at most {max_answer_chars} ({ANSWER_CHARS_PER_TOKEN} for each token of "
                "max_answer_tokens). The model reads the last max_history_turns that fit in history_token_budget.",
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
    replaced: str | None = Field(None, description="The model's own sentence, when it gave a figure the guides do not.")
    quoted: bool = Field(False, description="The guides' own sentence, quoted under the answer (not the model's).")


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


class _Failed:
    """An exception of the blocking generator, carried to the event loop to be raised there."""

    def __init__(self, error: Exception) -> None:
        self.error = error


async def pumped(blocking: Iterator[T], gone: threading.Event | None = None) -> AsyncIterator[T]:
    """A blocking generator run in a thread of its own, closed soon after the client goes away.

    Left to Starlette, a generator whose client disconnected stays suspended and keeps its place
    at the model (tutor.gate) for ever. Here the thread stops at the next piece and closes it:
    when this async generator is closed (a stream whose client left), or when `gone` is set (a
    JSON request whose client left, see `until_gone`). The pieces come at least every second
    (tokens, or `Queued` while waiting), so the place is freed within a second. An exception of
    the generator is raised here, in the request. A thread per request, not a shared pool: a
    pool's workers could all be waiting in the line while the request that holds the model waits
    for a worker (the gate bounds the threads).
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
                if stop.is_set() or (gone is not None and gone.is_set()):
                    break
                put(item)
        except Exception as exc:  # noqa: BLE001 (raised again in the request)
            put(_Failed(exc))
        finally:
            close = getattr(blocking, "close", None)
            if close is not None:
                close()
            put(_END)

    threading.Thread(target=pump, name="tutor-stream", daemon=True).start()
    try:
        while (item := await pieces.get()) is not _END:
            if isinstance(item, _Failed):
                raise item.error
            yield item
    finally:
        stop.set()


async def until_gone(request: Request, gone: threading.Event, every: float = 0.25) -> None:
    """Set `gone` once the client has closed its connection (a JSON request has nothing to write
    until its answer is done, so it would not notice otherwise)."""
    while not gone.is_set():
        if await request.is_disconnected():
            gone.set()
            return
        await asyncio.sleep(every)


def session_key(token: str) -> bytes:
    """The key that signs login cookies: derived from the token, so that a cookie never holds it."""
    return hmac.new(token.encode(), b"tutor session", sha256).digest()


def issue_session(key: bytes, now: float | None = None) -> str:
    """A login cookie of its own for each sign-in: issue time, a random nonce, and their HMAC.

    One fixed value for everyone could not expire and, once seen, would work for ever; this one
    is refused after SESSION_SECONDS, and changing the token ends every session.
    """
    signed = f"{int(time.time() if now is None else now)}.{secrets.token_hex(16)}"
    return f"{signed}.{hmac.new(key, signed.encode(), sha256).hexdigest()}"


def session_is_valid(key: bytes, value: bytes, now: float | None = None) -> bool:
    """A cookie from `issue_session` with this key, not expired; bytes, so that any value is refused, never an error."""
    issued, _, rest = value.partition(b".")
    nonce, _, mac = rest.partition(b".")
    if not (issued.isdigit() and len(issued) <= 12 and nonce and mac):
        return False
    expected = hmac.new(key, issued + b"." + nonce, sha256).hexdigest().encode()
    age = (time.time() if now is None else now) - int(issued)
    return hmac.compare_digest(mac, expected) and -60 <= age < SESSION_SECONDS


def plain_error(body: bytes) -> bytes | None:
    """`{"error": ...}` for a JSON refusal in another shape (Gradio's `{"detail": ...}`); None to keep it."""
    try:
        found = json.loads(body)
    except ValueError:
        return None
    if not isinstance(found, dict) or "error" in found or "detail" not in found:
        return None
    detail = found["detail"]
    if isinstance(detail, list):  # FastAPI's validation errors: where and what, as in invalid_request
        detail = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()) if p != 'body') or 'body'}: {e.get('msg')}"
            if isinstance(e, dict)
            else str(e)
            for e in detail[:5]
        )
    said = " ".join(str(detail).split())[:300] or "refused"
    return json.dumps({"error": said}, ensure_ascii=False).encode()


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


class _Outgoing:
    """What Guard does to one response on its way out: see Guard."""

    def __init__(self, send: Send, extra: list[tuple[bytes, bytes]], on_response: Callable[[int], None] | None) -> None:
        self.send_on = send
        self.extra = extra
        self.on_response = on_response
        self.held: MutableMapping[str, Any] | None = None  # the start of a JSON refusal, sent with its body
        self.body: list[bytes] = []
        self.started = self.ended = False

    async def end(self) -> None:
        """End a response whose app stopped half-way (see Guard.__call__)."""
        if self.started and not self.ended:
            await self.send({"type": "http.response.body", "body": b"", "more_body": False})

    async def send(self, message: MutableMapping[str, Any]) -> None:
        self.started = True
        self.ended = message["type"] == "http.response.body" and not message.get("more_body")
        if message["type"] == "http.response.start":
            kept = [(k, v) for k, v in message.get("headers", []) if not k.lower().startswith(b"access-control-")]
            message = {**message, "headers": [*kept, *self.extra]}
            if self.on_response:
                self.on_response(int(message["status"]))
            content_type = next((v for k, v in kept if k.lower() == b"content-type"), b"")
            if int(message["status"]) >= 400 and content_type.startswith(b"application/json"):
                self.held = message
                return
        elif message["type"] == "http.response.body" and self.held is not None:
            self.body.append(message.get("body", b""))
            if message.get("more_body"):
                return
            start, body = self.held, b"".join(self.body)
            self.held = None
            body = plain_error(body) or body
            headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
            await self.send_on({**start, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
            message = {"type": "http.response.body", "body": body}
        await self.send_on(message)


class Guard:
    """ASGI middleware in front of every route: body size, identity, auth, and security headers.

    - Gradio's upload routes are closed (BLOCKED_ROUTES): the page has no file inputs.
    - A body over `max_request_bytes` is refused with 413 before the app reads it.
    - The user is named by `trusted_user_header` only when the request comes straight from a
      trusted proxy address; the app reads it from `x-tutor-user`, which clients cannot set. Such
      a proxy's `X-Forwarded-Proto: https` makes the request's scheme https (for Secure cookies).
    - With `auth_token`, a request needs the bearer token, a login cookie, or a trusted user;
      a browser asking for a page is sent to the login form, anything else gets 401. Public
      routes learn whether the caller would have passed from `scope[AUTHORISED]`.
    - Responses lose the CORS headers the app behind set (Gradio allows any origin whose Host is
      not localhost, with credentials): CORS is the configured origins' alone, set outside.
    - A JSON refusal in Gradio's shape (`{"detail": ...}`) is rewritten to the API's `{"error": ...}`.
    """

    def __init__(self, app: Any, settings: Any, on_response: Callable[[int], None] | None = None) -> None:
        self.app = app
        self.settings = settings
        self.token = settings.auth_token.get_secret_value() if settings.auth_token else None
        self.session_key = session_key(self.token) if self.token else None
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

    def _identify(self, scope: Scope) -> tuple[Scope, str | None]:
        """The scope with the user (from a trusted proxy only) and the scheme the proxy was asked with."""
        headers = [(k, v) for k, v in scope.get("headers", []) if k != USER_HEADER]
        user, scheme = None, scope.get("scheme")
        if self._from_proxy(scope):
            found = dict(headers)
            if self.user_header:
                user = found.get(self.user_header, b"").decode("latin-1").strip()[:200] or None
            if found.get(b"x-forwarded-proto", b"").strip().lower() == b"https":
                scheme = "wss" if scope["type"] == "websocket" else "https"
        if user:
            headers.append((USER_HEADER, user.encode("latin-1")))
        return {**scope, "headers": headers, "scheme": scheme}, user

    def _authorised(self, found: dict[bytes, bytes], user: str | None) -> bool:
        """Compared as bytes: a header with any bytes at all is refused, never an error."""
        if self.token is None or user:
            return True
        bearer = found.get(b"authorization", b"")
        if bearer[:7].lower() == b"bearer " and hmac.compare_digest(bearer[7:].strip(), self.token.encode()):
            return True
        for part in found.get(b"cookie", b"").split(b";"):
            name, _, value = part.strip().partition(b"=")
            if name == SESSION_COOKIE.encode() and self.session_key and session_is_valid(self.session_key, value):
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
        scope, user = self._identify(scope)
        outgoing = _Outgoing(send, self.security_headers, self.on_response)
        send_with_headers = outgoing.send

        async def refuse(response: Response) -> None:
            await response(scope, receive, send_with_headers)

        found = dict(scope["headers"])
        if scope["type"] == "http":
            length = found.get(b"content-length", b"0")
            if not length.isdigit() or int(length) > self.settings.max_request_bytes:
                await refuse(self._too_large())
                return
        if BLOCKED_ROUTES.search(path):
            await refuse(_json_response(404, "not found"))
            return
        scope[AUTHORISED] = self._authorised(found, user)
        if path not in PUBLIC_ROUTES and not scope[AUTHORISED]:
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
        try:
            await self.app(scope, receive, send_with_headers)
        except RuntimeError as exc:
            # Gradio's queue/data, asked for a session it does not know, tells the client so in
            # its event stream and then raises a 404 inside the stream it has begun: Starlette can
            # only raise that again, and uvicorn logged two tracebacks for a plain refusal. A
            # refusal that came after its response began is ended here, quietly; anything else
            # is raised as before.
            if not (outgoing.started and isinstance(exc.__cause__, StarletteHTTPException)):
                raise
            await outgoing.end()

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
    ask_body = ask_request_model(
        settings.max_question_chars,
        settings.max_answer_tokens * ANSWER_CHARS_PER_TOKEN,
        [*tutor.presets, NO_PRESET.name],
    )

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
    def readyz(request: Request) -> JSONResponse:
        """The index and the model are loaded: questions can be answered. The engines' addresses
        are said only to callers with the token: they name hosts of the private network."""
        retriever = tutor.retriever
        engines: dict[str, str | None] = {"model": tutor.chat.name}
        if request.scope.get(AUTHORISED):
            engines |= {"llm_url": settings.llm_url, "chroma_url": settings.chroma_url}
        if retriever is None or not retriever.chunk_count:
            return JSONResponse({"status": "no index", **engines}, status_code=503)
        return JSONResponse({"status": "ready", **engines, "corpus_version": retriever.corpus_version})

    @app.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
    def metrics() -> Response:
        """Prometheus metrics: questions by outcome, latencies, layer shares, the queue."""
        return Response(ops.metrics.exposition(), media_type="text/plain; version=0.0.4")

    async def ask(body: AskFields, request: Request) -> Any:
        """The whole answer with its sources and layer attribution (the JSON contract)."""
        started, user = time.perf_counter(), request.headers.get(USER_HEADER.decode())
        # Answered in a thread of its own that stops, giving up its place at the model, when the
        # client leaves: a JSON request would otherwise be answered to the end for nobody.
        gone = threading.Event()
        watch = asyncio.create_task(until_gone(request, gone))
        answer: Answer | None = None
        try:
            async for event in pumped(tutor.stream(body.question, body.history, explain=True, **_options(body)), gone):
                if isinstance(event, Answered | Explained):
                    answer = event.answer
        except TutorError as exc:
            ops.question_done("api", started=started, error=exc, user=user, question=body.question)
            raise
        finally:
            watch.cancel()
        if gone.is_set() or answer is None:
            ops.question_done("api", started=started, outcome="left", user=user, question=body.question)
            return Response(status_code=CLIENT_LEFT)
        done = answer.to_dict()
        ops.question_done("api", started=started, answer=done, user=user, question=body.question)
        return done

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
                last: dict[str, Any] = {}
                for event in itertools.chain((first,), stream):
                    match event:
                        case Answered(answer=answer):
                            last = answer.to_dict()
                            yield _event("answer", last)
                        case Explained(answer=answer):
                            last = answer.to_dict()
                            yield _event("attribution", last)
                        case Queued(ahead=ahead):
                            yield _event("queued", {"ahead": ahead})
                        case Token(text=text):
                            yield _event("token", {"text": text})
                finished = True
                done(answer=last)  # after the stream ended: the model is free again
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
        response.set_cookie(
            SESSION_COOKIE,
            issue_session(session_key(expected)),
            max_age=SESSION_SECONDS,
            httponly=True,
            samesite="lax",
            secure=request.url.scheme == "https",  # the scheme a trusted proxy was asked with (Guard)
            path=root or "/",
        )
        return response

    # The other doors, thin over the same tutor and behind the same Guard (MCP with the mcp extra).
    from .openai_api import openai_router

    app.include_router(openai_router(tutor, ops))
    if importlib.util.find_spec("mcp") is not None:
        from .mcp_server import mount_mcp

        mount_mcp(app, tutor, ops)

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
        _refuse_unknown_events(app)
    return app


def _refuse_unknown_events(app: FastAPI) -> None:
    """An event the page does not have, named by a client (`/gradio_api/call/nothing`, a queue
    request with `fn_index` 999), is a 404. Gradio raised FnIndexInferError or KeyError there: a
    500 and a traceback in the log for a client's typo."""
    from gradio.route_utils import FnIndexInferError
    from starlette.routing import Mount

    def no_such_event(_: Any, exc: Exception) -> Response:
        return _json_response(404, "this page has no such event")

    for route in app.routes:
        page: Any = route.app if isinstance(route, Mount) else None
        if hasattr(page, "get_blocks"):  # a mounted Gradio page
            page.add_exception_handler(FnIndexInferError, no_such_event)
            page.add_exception_handler(KeyError, no_such_event)


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
    # Gradio's copies of the files it serves (the exports) in a private folder, not in the
    # system's temp folder where every account could read them.
    os.environ.setdefault("GRADIO_TEMP_DIR", str(private_folder(tutor.settings.data_dir / "gradio").resolve()))
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
