"""One line of waiting questions in front of the model, shared by the page, the API and the CLI.

The in-process llama.cpp model runs one generation at a time; a request that finds it busy waits
its turn in a bounded line and is told how many are ahead, and one that finds the line full is
refused at once (BusyError) rather than left to time out.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from .errors import BusyError


@dataclass(frozen=True)
class Queued:
    """Streamed in place of text while a question waits: how many are served or waiting before it."""

    ahead: int


class ModelGate:
    """`slots` requests use the model at once; at most `max_waiting` more wait, first come first served."""

    def __init__(self, slots: int = 1, max_waiting: int = 16) -> None:
        self.slots = slots
        self.max_waiting = max_waiting
        self._line: deque[object] = deque()  # the first `slots` tickets hold the model
        self._changed = threading.Condition()

    @property
    def waiting(self) -> int:
        with self._changed:
            return max(len(self._line) - self.slots, 0)

    @property
    def busy(self) -> int:
        with self._changed:
            return min(len(self._line), self.slots)

    def join(self, *, bounded: bool = True) -> object:
        """A ticket in the line; BusyError when the line is full (`bounded` is off for work that
        finishes a request already admitted, such as its attribution)."""
        ticket = object()
        with self._changed:
            if bounded and len(self._line) >= self.slots + self.max_waiting:
                raise BusyError(
                    f"the tutor is busy: {len(self._line)} questions are ahead of you and the line is full; "
                    "try again in a minute"
                )
            self._line.append(ticket)
        return ticket

    def ahead(self, ticket: object, timeout: float) -> int:
        """How many are ahead of `ticket` once it moves or `timeout` passes; 0 means it holds a slot."""
        with self._changed:
            position = self._line.index(ticket)
            if position >= self.slots:
                self._changed.wait(timeout)
                position = self._line.index(ticket)
            return max(position - self.slots + 1, 0)

    def leave(self, ticket: object) -> None:
        """Give up a slot or a place in the line (also when the client went away while waiting)."""
        with self._changed:
            if ticket in self._line:
                self._line.remove(ticket)
                self._changed.notify_all()

    @contextmanager
    def hold(self) -> Iterator[None]:
        """Wait, unbounded and silently, for a slot; for work that has already been admitted."""
        ticket = self.join(bounded=False)
        try:
            while self.ahead(ticket, timeout=5.0):
                pass
            yield
        finally:
            self.leave(ticket)
