"""The chat reply the UI streams, with the real model (the browser test comes with the layers UI)."""

from __future__ import annotations

from tutor import Tutor
from tutor.ui import chat_reply, history_turns


def test_history_turns_pairs_messages_and_drops_sources() -> None:
    history = [
        {"role": "user", "content": "What is RAG?"},
        {"role": "assistant", "content": "RAG adds knowledge.[1]\n\n**Sources**\n1. *Guide*"},
        {"role": "user", "content": [{"type": "text", "text": "Cost?"}]},
        {"role": "assistant", "content": "Low."},
    ]
    assert history_turns(history) == [("What is RAG?", "RAG adds knowledge.[1]"), ("Cost?", "Low.")]


def test_chat_reply_streams_then_lists_sources(real_tutor: Tutor) -> None:
    replies = list(chat_reply(real_tutor, "What is backpropagation used for?", []))
    assert len(replies) > 2 and replies[-2] in replies[-1]
    assert "**Sources**" in replies[-1] and "1. *Training" in replies[-1]


def test_chat_reply_bad_input_is_a_message(real_tutor: Tutor) -> None:
    assert list(chat_reply(real_tutor, "   ", [])) == ["⚠️ the question is empty"]
    assert list(chat_reply(real_tutor, "x" * 3000, []))[0].startswith("⚠️ the question is 3000 characters")
