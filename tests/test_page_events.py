"""The chat's events on the server, driven directly with a fake model: the line of questions and
the conversation it keeps (the browser test drives the same events through the page)."""

from __future__ import annotations

from typing import Any

import gradio as gr

from tests.conftest import FakeChat
from tutor import Tutor
from tutor.records import Recorder
from tutor.web.page_events import ChatEvents, Line


def _events(tutor: Tutor) -> ChatEvents:
    return ChatEvents(tutor, Recorder(tutor.settings, lambda: 0, lambda: 0))


def _asked(chat: list[dict[str, str]]) -> list[str]:
    return [message["content"] for message in chat if message["role"] == "user"]


def test_each_drain_answers_with_the_whole_conversation(fake_tutor: tuple[Tutor, FakeChat]) -> None:
    """A drain that starts once the one before it has finished still has the first answer: the
    conversation is the line's, not the `answers` state Gradio hands each event (handed before the
    last answer was stored in it, the first question was lost from the page and from the history)."""
    tutor, chat = fake_tutor
    chat.replies = [["Pre-training teaches a model language from a large amount of text."], ["It takes months."]]
    events, line = _events(tutor), Line()
    preset = tutor.settings.preset
    for question in ("What is pre-training?", "How long does it take?"):
        assert events.send(question, line, preset, True, 0)[0] == ""  # the box is emptied
        outputs = list(events.drain(line, None))  # type: ignore[arg-type]
    stored = [output[2] for output in outputs if isinstance(output[2], list)]
    assert [answer["question"] for answer in stored[-1]] == ["What is pre-training?", "How long does it take?"]
    assert _asked(outputs[-1][0]) == ["What is pre-training?", "How long does it take?"]
    second_prompt = [message["content"] for message in chat.prompts[-1]]
    assert any("Pre-training teaches a model language" in content for content in second_prompt[:-1])


def test_questions_sent_during_an_answer_wait_in_view_and_a_cleared_one_is_not_kept(
    fake_tutor: tuple[Tutor, FakeChat],
) -> None:
    tutor, chat = fake_tutor
    chat.replies = [["Fine-tuning adapts ", "a pre-trained model."], ["RLHF aligns a model with people's preferences."]]
    events, line = _events(tutor), Line()
    preset = tutor.settings.preset
    events.send("What is fine-tuning?", line, preset, True, 0)
    drain = events.drain(line, None)  # type: ignore[arg-type]
    first: Any = next(drain)  # the first piece of the answer is on the page
    assert _asked(first[0]) == ["What is fine-tuning?"]
    _, shown, _, _ = events.send("What is RLHF?", line, preset, True, 0)
    assert "Queued" in shown[-1]["content"] and _asked(shown) == ["What is fine-tuning?", "What is RLHF?"]
    assert list(events.drain(line, None)) == [(gr.skip(),) * 5]  # type: ignore[arg-type]
    rest = list(drain)
    assert _asked(rest[-1][0]) == ["What is fine-tuning?", "What is RLHF?"]
    assert [answer["question"] for answer in line.answers] == ["What is fine-tuning?", "What is RLHF?"]

    chat.replies = [["Pre-training ", "comes first."]]
    events.send("What is pre-training?", line, preset, True, 0)
    drain = events.drain(line, None)  # type: ignore[arg-type]
    next(drain)
    events.new_conversation(line)  # the chat's clear button while the answer is written
    list(drain)
    assert line.answers == []
