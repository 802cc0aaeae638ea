"""Who may come in, and what every response carries: the `Guard` ASGI middleware in front of the
whole server, and the signed sign-in cookies it accepts.

Request size, the user named by a trusted SSO proxy, the token or a sign-in cookie, the routes that
stay closed, and the headers that say who may frame the page (see the Guard's own docstring and
SECURITY.md).
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import re
import secrets
import time
from collections.abc import Awaitable, Callable, MutableMapping
from hashlib import sha256
from typing import Any
from urllib.parse import quote

from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..config import Settings

PUBLIC_ROUTES = ("/healthz", "/readyz", "/login", "/logout")  # /logout only forgets a cookie
# The page takes no files and has no component with server functions: Gradio's routes that take
# uploads (files, screen recordings, multipart component calls) would let anyone store or send
# files to the server, and run history would make it call the Hugging Face Hub for a client.
# ... and `stream/{event_id}`, which feeds data into a running event: the page has no streaming input.
BLOCKED_ROUTES = re.compile(r"/gradio_api/(upload|process_recording|component_server|run-history/.*|stream/.*)/?$")
USER_HEADER = "x-tutor-user"  # set by Guard for the app, never taken from the client
_USER_HEADER = USER_HEADER.encode()
SESSION_COOKIE = "tutor_session"
AUTHORISED = "tutor.authorised"  # in the scope: whether the caller passed the token check (public routes too)
SESSION_SECONDS = 12 * 3600  # a sign-in lasts a working day

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


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
    user = headers.get(_USER_HEADER)
    if user:
        return "user:" + user.decode("latin-1")
    for part in headers.get(b"cookie", b"").split(b";"):
        name, _, value = part.strip().partition(b"=")
        if name == SESSION_COOKIE.encode() and value:
            return "cookie:" + value.decode("latin-1")
    return None


def json_error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """A refusal as every route of the server gives it: `{"error": "..."}`."""
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
      trusted proxy address; the app reads it from USER_HEADER, which clients cannot set. Such
      a proxy's `X-Forwarded-Proto: https` makes the request's scheme https (for Secure cookies).
    - With `auth_token`, a request needs the bearer token, a login cookie, or a trusted user;
      a browser asking for a page is sent to the login form, anything else gets 401. Public
      routes learn whether the caller would have passed from `scope[AUTHORISED]`.
    - Responses lose the CORS headers the app behind set (Gradio allows any origin whose Host is
      not localhost, with credentials): CORS is the configured origins' alone, set outside.
    - A JSON refusal in Gradio's shape (`{"detail": ...}`) is rewritten to the API's `{"error": ...}`.
    """

    def __init__(self, app: Any, settings: Settings, on_response: Callable[[int], None] | None = None) -> None:
        self.app = app
        self.settings = settings
        self.token = settings.auth_token.get_secret_value() if settings.auth_token else None
        self.session_key = session_key(self.token) if self.token else None
        self.user_header = settings.trusted_user_header.lower().encode() if settings.trusted_user_header else None
        self.proxies = [ipaddress.ip_network(p, strict=False) for p in settings.trusted_proxies]
        self.security_headers = [
            (b"content-security-policy", f"frame-ancestors {frame_ancestors(settings)}".encode()),
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
        headers = [(k, v) for k, v in scope.get("headers", []) if k != _USER_HEADER]
        user, scheme = None, scope.get("scheme")
        if self._from_proxy(scope):
            found = dict(headers)
            if self.user_header:
                user = found.get(self.user_header, b"").decode("latin-1").strip()[:200] or None
            if found.get(b"x-forwarded-proto", b"").strip().lower() == b"https":
                scheme = "wss" if scope["type"] == "websocket" else "https"
        if user:
            headers.append((_USER_HEADER, user.encode("latin-1")))
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
        return json_error(413, f"the request is larger than {self.settings.max_request_bytes} bytes")

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
            await refuse(json_error(404, "not found"))
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
                    json_error(
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


def frame_ancestors(settings: Settings) -> str:
    """The CSP frame-ancestors that Guard sends: the pages that may frame the tutor. A frame from
    any other origin fails in the browser alone (its console says why), so `serve` logs it."""
    return " ".join(settings.frame_ancestors) or "'none'"


def request_user(headers: Any) -> str | None:
    """The user that Guard named from a trusted SSO header, if any (Starlette's or Gradio's headers)."""
    return headers.get(USER_HEADER) if headers is not None else None
