"""The JSON API against its own OpenAPI spec: Schemathesis generates valid and invalid requests for
every operation of the real server and checks each answer: no 5xx, only documented status codes,
the documented content types and bodies.

(Schemathesis's pytest plugin does not run under pytest 9, so its strategies drive Hypothesis here.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

OPERATIONS = [
    "GET /healthz",
    "GET /readyz",
    "GET /metrics",
    "GET /api/history",
    "POST /api/ask",
    "POST /api/ask/stream",
]


@pytest.fixture(scope="module")
def api_schema(server: tuple[str, Path]) -> Any:
    return schemathesis.openapi.from_url(server[0] + "openapi.json")


def test_the_spec_lists_every_operation(api_schema: Any) -> None:
    labels = {result.ok().label for result in api_schema.get_all_operations()}
    assert labels == set(OPERATIONS)


# Invalid requests only where there is an input to get wrong.
CASES = [(label, GenerationMode.POSITIVE) for label in OPERATIONS] + [
    (label, GenerationMode.NEGATIVE) for label in OPERATIONS if label.startswith("POST")
]


@pytest.mark.parametrize(("label", "mode"), CASES, ids=[f"{label} {mode.value}" for label, mode in CASES])
def test_every_operation_keeps_its_contract(api_schema: Any, label: str, mode: GenerationMode) -> None:
    operation = api_schema.find_operation_by_label(label)
    examples = 12 if label.startswith("POST") else 4

    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(case=operation.as_strategy(generation_mode=mode))
    def check(case: Any) -> None:
        case.call_and_validate(timeout=180)

    check()
