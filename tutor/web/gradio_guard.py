"""The Gradio page's events, checked before Gradio sees them.

The page is mounted with `mount_gradio_app` and never launched, so Gradio's own checks of the
file paths a client names do not run; and Gradio keys a conversation by a `session_hash` that the
client chooses. This middleware stands between the Guard and the page:

- no event of the page takes a file, so an event payload that names one anywhere (a `FileData`
  with a `path` or `url`, in any input, the event data or a history turn) is refused whole with 422;
- a session belongs to the first signed-in user (SSO user, or sign-in cookie) who uses it:
  another user naming the same `session_hash` is refused with 403.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs

from fastapi.responses import JSONResponse

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

GRADIO_API = "/gradio_api/"
# Keys that only a file object has: Gradio's FileData and the older {"name": ..., "is_file": true}.
FILE_KEYS = frozenset({"path", "url", "orig_name", "is_file", "is_stream", "meta", "mime_type"})
MAX_DEPTH = 32  # an event payload is a few levels deep; deeper is an attack on the parser
MAX_SESSIONS = 20_000  # sessions remembered with their owner; the oldest are forgotten first


def names_a_file(value: Any, depth: int = 0) -> bool:
    """The JSON value has a file object somewhere in it (or nests deeper than any event does)."""
    if depth > MAX_DEPTH:
        return True
    if isinstance(value, dict):
        if FILE_KEYS & value.keys():
            return True
        return any(names_a_file(v, depth + 1) for v in value.values())
    if isinstance(value, list):
        return any(names_a_file(v, depth + 1) for v in value)
    return False


def _session_of(path: str, query: bytes, body: Any) -> str | None:
    if isinstance(body, dict) and isinstance(body.get("session_hash"), str):
        return str(body["session_hash"])
    found = parse_qs(query.decode("latin-1")).get("session_hash")
    if found:
        return found[0]
    if "/heartbeat/" in path:
        return path.rsplit("/heartbeat/", 1)[1].split("/", 1)[0] or None
    return None


class GradioGuard:
    """ASGI middleware for the mounted Gradio apps; every other route passes untouched."""

    def __init__(self, app: Any, *, identity: Callable[[dict[bytes, bytes]], str | None]) -> None:
        self.app = app
        self.identity = identity  # who is signed in, from the request's headers (None: nobody)
        self.owners: OrderedDict[str, str] = OrderedDict()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or GRADIO_API not in scope["path"]:
            await self.app(scope, receive, send)
            return
        body: Any = None
        if scope["method"] == "POST":
            raw, receive = await _read_body(receive)
            try:
                body = json.loads(raw) if raw.strip() else None
            except (ValueError, RecursionError):
                body = None  # not JSON: Gradio refuses it itself
            except UnicodeDecodeError:
                body = None
            if names_a_file(body):
                await _refuse(scope, receive, send, 422, "this page takes no files: the request names one")
                return
        session = _session_of(scope["path"], scope.get("query_string", b""), body)
        user = self.identity(dict(scope.get("headers", [])))
        if session and user and not self._claim(session, user):
            await _refuse(scope, receive, send, 403, "this session belongs to another user")
            return
        await self.app(scope, receive, send)

    def _claim(self, session: str, user: str) -> bool:
        """True when the session is this user's, or nobody's yet (then it becomes theirs)."""
        owner = self.owners.get(session)
        if owner is None:
            self.owners[session] = user
            if len(self.owners) > MAX_SESSIONS:
                self.owners.popitem(last=False)
            return True
        self.owners.move_to_end(session)
        return owner == user


async def _read_body(receive: Receive) -> tuple[bytes, Receive]:
    """The whole body (the Guard in front has already bounded its size), and a receive that replays it."""
    parts: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        parts.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    replay = [{"type": "http.request", "body": b"".join(parts), "more_body": False}]

    async def replayed() -> MutableMapping[str, Any]:
        return replay.pop() if replay else await receive()

    return b"".join(parts), replayed


async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, message: str) -> None:
    await JSONResponse({"error": message}, status_code=status)(scope, receive, send)
