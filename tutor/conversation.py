"""A chat client's messages as the tutor takes them: earlier turns and the question.

The OpenAI-compatible endpoint and the LangChain runnable both receive a list of role-tagged
messages; this is the one place that decides what such a list may hold. The tutor's system
prompt is one of the layers it measures and comes from its presets, so a client's system
message is refused rather than mixed in; only text is accepted, so no door fetches an image
URL or opens a file a message names.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .errors import QuestionError
from .markers import NOT_TEXT
from .retrieve import Turn

USER_ROLES = frozenset({"user", "human"})
ASSISTANT_ROLES = frozenset({"assistant", "ai"})
SYSTEM_ROLES = frozenset({"system", "developer"})
SYSTEM_REFUSED = (
    "a system message cannot be sent: the tutor's system prompt is one of its presets "
    "(choose one with the model name tutor:PRESET or the preset option)"
)
# The rule of answer.check_question, for the earlier turns: control characters other than tab
# and newlines, and lone surrogates (bytes that were not UTF-8), are binary data, not text.


def message_text(content: Any, where: str) -> str:
    """The text of one message's content: a string, or a list of text parts (joined).

    Image, audio and file parts are refused, never fetched or opened.
    """
    if isinstance(content, str):
        text = content
    elif isinstance(content, list):
        pieces = []
        for part in content:
            if isinstance(part, str):
                pieces.append(part)
            elif isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
                pieces.append(part["text"])
            else:
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise QuestionError(f"{where}: only text is accepted, not a {kind!s:.40} part")
        text = "\n".join(pieces)
    else:
        raise QuestionError(f"{where}: the content must be text")
    if NOT_TEXT.search(text):
        raise QuestionError(f"{where} is not plain text (control characters, binary data or invalid UTF-8)")
    return text


def split_messages(messages: Sequence[tuple[str, Any]], *, max_turns: int) -> tuple[list[Turn], str]:
    """(history, question) from (role, content) pairs: user and assistant alternate, starting and
    ending with the user; the last user message is the question (checked later by the core)."""
    if not messages:
        raise QuestionError("there are no messages: send at least one user message")
    texts: list[str] = []
    for number, (role, content) in enumerate(messages):
        where = f"message {number} ({role!s:.20})"
        if role in SYSTEM_ROLES:
            raise QuestionError(SYSTEM_REFUSED)
        expected = USER_ROLES if number % 2 == 0 else ASSISTANT_ROLES
        if role not in USER_ROLES | ASSISTANT_ROLES:
            raise QuestionError(f"{where}: only user and assistant messages are accepted")
        if role not in expected:
            raise QuestionError(f"{where}: user and assistant messages must alternate, starting with the user")
        texts.append(message_text(content, where))
    if len(texts) % 2 == 0:
        raise QuestionError("the last message must be the user's question")
    history = list(zip(texts[0:-1:2], texts[1:-1:2], strict=True))
    if len(history) > max_turns:
        raise QuestionError(f"the conversation has {len(history)} earlier turns; the limit is {max_turns}")
    return history, texts[-1]
