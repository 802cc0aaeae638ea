"""The bad-input matrix for the CLI and the JSON API: each case gets a clear one-line message
(HTTP 4xx with a JSON error; one `error:` line and exit status 1), no traceback, and the server
goes on answering. The page's cases are in test_browser.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from .conftest import ROOT

MEGABYTE = "why " * 262_144  # 1 MiB of question
NESTED = "[" * 50_000 + "]" * 50_000

API_CASES = [
    ("empty", {"question": ""}, 422, "question: String should have at least 1 character"),
    ("whitespace", {"question": " \n\t "}, 422, "question: only spaces: write a question"),
    ("1 MB question", {"question": MEGABYTE}, 422, "question: String should have at most 2000 characters"),
    ("binary bytes", {"question": "what is \x00\x01\x02 RAG?"}, 422, "question: not plain text: it has control"),
    ("NUL alone", {"question": "\x00"}, 422, "question: not plain text: it has control characters (such as NUL)"),
    ("lone surrogate", {"question": "what is \ud800 RAG?"}, 422, "question: Input should be a valid string"),
    ("unknown preset", {"question": "What is RAG?", "preset": "pirate"}, 422, "preset: Input should be"),
    ("k too small", {"question": "What is RAG?", "k": 0}, 422, "k: Input should be greater than or equal to 1"),
    ("k too large", {"question": "What is RAG?", "k": 99}, 422, "k: Input should be less than or equal to 20"),
    ("k wrong type", {"question": "What is RAG?", "k": "three"}, 422, "k: Input should be a valid integer"),
    ("k a boolean", {"question": "What is RAG?", "k": True}, 422, "k: Input should be a valid integer"),
    ("k a numeric string", {"question": "What is RAG?", "k": "2"}, 422, "k: Input should be a valid integer"),
    (
        "retrieval a string",
        {"question": "What is RAG?", "retrieval": "yes"},
        422,
        "retrieval: Input should be a valid boolean",
    ),
    ("question wrong type", {"question": ["What", "is", "RAG?"]}, 422, "question: Input should be a valid string"),
    ("10,000 turns", {"question": "And then?", "history": [["q", "a"]] * 10_000}, 422, "at most 100 items"),
    ("history wrong shape", {"question": "And then?", "history": [["only one"]]}, 422, "history.0"),
    # A lone surrogate in a turn reached the model's tokenizer: a 500 with a traceback (issue 11, item 5).
    ("history lone surrogate", {"question": "And?", "history": [["what is \ud800?", "A"]]}, 422, "history.0.0: Input"),
    ("answer lone surrogate", {"question": "And?", "history": [["Q", "\udfff"]]}, 422, "history.0.1: Input should be"),
    ("history NUL", {"question": "And?", "history": [["Q", "A"], ["a\x00b", "A"]]}, 422, "turn 1, user side: not"),
    # Each turn has a length limit (issue 11, item 3): a question's, and 16 characters a token of an answer.
    ("long user turn", {"question": "And?", "history": [["q" * 2001, "A"]]}, 422, "history.0.0: String should have at"),
    ("long answer turn", {"question": "And?", "history": [["Q", "a" * 2561]]}, 422, "history.0.1: String should have"),
    ("no question", {}, 422, "question: Field required"),
    ("not an object", ["What is RAG?"], 422, "Input should be a valid dictionary"),
]
RAW_CASES = [
    ("invalid UTF-8", b'{"question": "what is \xff\xfe RAG?"}', "error"),
    ("not JSON", b"question=What is RAG?", "error"),
    ("deeply nested", f'{{"question": {NESTED}}}'.encode(), "error"),
    ("truncated JSON", b'{"question": "What is', "error"),
    ("over the size limit", b'{"question": "' + b"x" * 3_000_000 + b'"}', "larger than 2097152 bytes"),
]


@pytest.mark.parametrize("route", ["api/ask", "api/ask/stream"])
def test_the_api_refuses_bad_input_clearly(server: tuple[str, Path], route: str) -> None:
    url = server[0]
    for name, body, status, message in API_CASES:
        # Sent as JSON with \u escapes: httpx's own encoding cannot carry a lone surrogate.
        raw = json.dumps(body).encode()
        response = httpx.post(url + route, content=raw, headers={"Content-Type": "application/json"}, timeout=60)
        assert response.status_code == status, (name, response.status_code, response.text[:300])
        error = response.json()["error"]
        assert message in error and "\n" not in error and "Traceback" not in error, (name, error[:300])
        assert "pattern" not in error and "^[" not in error, (name, error)  # plain words, not a regex
    for name, raw, message in RAW_CASES:
        response = httpx.post(url + route, content=raw, headers={"Content-Type": "application/json"}, timeout=60)
        assert 400 <= response.status_code < 500, (name, response.status_code, response.text[:300])
        assert message in response.text and len(response.json()["error"]) < 500, (name, response.text[:300])
    assert httpx.get(url + "healthz").status_code == 200
    answer = httpx.post(url + "api/ask", json={"question": "What is RLHF?"}, timeout=120).json()
    assert answer["in_scope"] is True  # still answering after all that


def _tutor(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    environment = {**os.environ, "TUTOR_PROMPTS_DIR": str(ROOT / "prompts")}
    command = [sys.executable, "-c", "from tutor.cli import main; main()", *args]
    return subprocess.run(command, input=stdin, capture_output=True, timeout=120, env=environment)


@pytest.mark.parametrize(
    ("name", "args", "stdin", "message"),
    [
        ("empty", ["ask", ""], None, "error: the question is empty"),
        ("whitespace", ["ask", "  \t "], None, "error: the question is empty"),
        ("1 MB question", ["ask", "-"], MEGABYTE.encode(), "error: the question is 1048575 characters long"),
        ("binary bytes", ["ask", "what is \x01\x02 RAG?"], None, "error: the question is not plain text"),
        ("invalid UTF-8", ["ask", "-"], b"what is \xff\xfe RAG?", "error: the question is not plain text"),
        ("unknown preset", ["ask", "--preset", "pirate", "What is RAG?"], None, "error: unknown preset 'pirate'"),
        ("k out of range", ["ask", "-k", "0", "What is RAG?"], None, "Invalid value for '-k'"),
    ],
)
def test_the_cli_refuses_bad_input_in_one_line(name: str, args: list[str], stdin: bytes | None, message: str) -> None:
    result = _tutor(*args, stdin=stdin)
    err = result.stderr.decode("utf-8", errors="replace")
    assert result.returncode != 0 and message in err, (name, err[-500:])
    assert "Traceback" not in err and not result.stdout


def test_the_cli_json_output_is_valid_with_odd_but_fine_text(index_copy: Path) -> None:
    """Unicode that is text (accents, emoji, right-to-left) is a question like any other."""
    result = _tutor("ask", "--json", "Qu'est-ce que le RLHF ? 🤖 ما هو")
    assert result.returncode == 0, result.stderr.decode()[-500:]
    assert json.loads(result.stdout)["question"].startswith("Qu'est-ce que le RLHF")


TURN_QUESTION = "Tell me more about how pre-training works, and why it needs so much text to learn from. " * 4
TURN_ANSWER = "Pre-training teaches a model to predict the next token over a large corpus of text [1]. " * 14


def test_a_long_history_is_cut_to_its_budget(server: tuple[str, Path]) -> None:
    """Six long turns (each within its limits) are more than history_token_budget (1000): the
    oldest are left out, the latest kept, and the answer says so (issue 11, item 3)."""
    history = [[f"Turn {n}. {TURN_QUESTION}", TURN_ANSWER] for n in range(6)]
    body = {"question": "And what is RLHF?", "history": history}
    answer = httpx.post(server[0] + "api/ask", json=body, timeout=300).json()
    sent = [message["content"] for message in answer["prompt"][1:-1]]  # between the system prompt and the question
    assert 2 <= len(sent) < 2 * len(history), len(sent)
    assert sent[-2] == history[-1][0] and sent[0].startswith(f"Turn {6 - len(sent) // 2}.")  # the latest, in order
    assert f"the model read only its last {len(sent) // 2} turn" in " ".join(answer["warnings"]), answer["warnings"]
    assert answer["in_scope"] is True and answer["attribution"] is not None
