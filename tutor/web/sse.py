"""Server-sent events, and the thread that runs a blocking answer generator for an async route."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any, TypeVar

from starlette.requests import Request

T = TypeVar("T")


def sse_event(name: str, data: Any) -> str:
    """One server-sent event with a JSON payload."""
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
