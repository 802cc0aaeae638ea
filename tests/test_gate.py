"""The line in front of the model: first come first served, bounded, and freed by those who leave."""

from __future__ import annotations

import threading

import pytest

from tutor.errors import BusyError
from tutor.gate import ModelGate


def test_first_come_first_served_and_bounded() -> None:
    gate = ModelGate(slots=1, max_waiting=2)
    first, second, third = gate.join(), gate.join(), gate.join()
    assert gate.ahead(first, 0) == 0 and gate.ahead(second, 0) == 1 and gate.ahead(third, 0) == 2
    assert gate.busy == 1 and gate.waiting == 2
    with pytest.raises(BusyError, match="3 questions are ahead of you and the line is full"):
        gate.join()
    gate.leave(second)  # a client that went away while waiting
    assert gate.ahead(third, 0) == 1
    gate.leave(first)
    assert gate.ahead(third, 0) == 0 and gate.waiting == 0
    gate.leave(third)
    gate.leave(third)  # leaving twice is harmless
    assert gate.busy == 0


def test_admitted_work_is_not_refused_and_waits_its_turn() -> None:
    gate = ModelGate(slots=1, max_waiting=0)
    holder = gate.join()
    with pytest.raises(BusyError):
        gate.join()
    order: list[str] = []

    def attribution() -> None:
        with gate.hold():  # unbounded: finishing an admitted request
            order.append("attribution")

    waiter = threading.Thread(target=attribution)
    waiter.start()
    waiter.join(timeout=0.3)
    assert waiter.is_alive() and not order  # still waiting for the slot
    order.append("answer")
    gate.leave(holder)
    waiter.join(timeout=10)
    assert order == ["answer", "attribution"] and gate.busy == 0


def test_several_slots_for_a_model_server() -> None:
    gate = ModelGate(slots=3, max_waiting=1)
    tickets = [gate.join() for _ in range(4)]
    assert [gate.ahead(t, 0) for t in tickets] == [0, 0, 0, 1]
    with pytest.raises(BusyError):
        gate.join()
