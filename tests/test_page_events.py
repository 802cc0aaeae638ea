"""The chat's events on the server, driven directly with a fake model: the line of questions and
the conversation it keeps (the browser test drives the same events through the page)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import gradio as gr

from tests.conftest import FakeChat
from tutor import Tutor
from tutor.records import Recorder
from tutor.web.guard import USER_HEADER
from tutor.web.page_events import ChatEvents, Line


def _events(tutor: Tutor, data_dir: Path | None = None) -> ChatEvents:
    settings = tutor.settings.model_copy(update={"data_dir": data_dir}) if data_dir else tutor.settings
    return ChatEvents(tutor, Recorder(settings, lambda: 0, lambda: 0))


def _asked(chat: list[dict[str, str]]) -> list[str]:
    return [message["content"] for message in chat if message["role"] == "user"]


def test_each_drain_answers_with_the_whole_conversation(fake_tutor: tuple[Tutor, FakeChat]) -> None:
    """A drain that starts once the one before it has finished still has the first answer: the
    conversation is the line's, not a state Gradio hands each event (handed before the last answer
    was stored in it, the first question was lost from the page and from the history)."""
    tutor, chat = fake_tutor
    chat.replies = [
        ["Pre-training teaches a model language from a large amount of text."],
        ["Yes"],  # the model's judgement: the follow-up is about what the passages say
        ["It takes months."],
    ]
    events, line = _events(tutor), Line()
    preset = tutor.settings.preset
    for question in ("What is pre-training?", "How long does it take?"):
        assert events.send(question, line, preset, True, 0)[0] == ""  # the box is emptied
        outputs = list(events.drain(line, None))  # type: ignore[arg-type]
    assert [answer["question"] for answer in line.answers] == ["What is pre-training?", "How long does it take?"]
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
    assert list(events.drain(line, None)) == [(gr.skip(),) * 4]  # type: ignore[arg-type]
    rest = list(drain)
    assert _asked(rest[-1][0]) == ["What is fine-tuning?", "What is RLHF?"]
    assert [answer["question"] for answer in line.answers] == ["What is fine-tuning?", "What is RLHF?"]

    chat.replies = [["Pre-training ", "comes first."]]
    events.send("What is pre-training?", line, preset, True, 0)
    drain = events.drain(line, None)  # type: ignore[arg-type]
    next(drain)
    events.new_conversation(line, None)  # type: ignore[arg-type]  # the chat's clear button while the answer is written
    after_clear = list(drain)
    assert line.answers == []
    assert all(_asked(output[0]) == [] for output in after_clear)  # its question and text left the chat
    assert all(output[1] == gr.skip() for output in after_clear)  # and its panel


def test_a_reload_restores_the_last_conversation_but_not_over_a_new_one(
    fake_tutor: tuple[Tutor, FakeChat], tmp_path: Path
) -> None:
    """A signed-in user's reload brings back their last conversation; not one they cleared (while
    its answer was written, or after it), and not over a question already sent on the new page."""
    tutor, chat = fake_tutor
    events, request = _events(tutor, tmp_path), SimpleNamespace(headers={USER_HEADER: "ann"})
    preset = tutor.settings.preset
    chat.replies = [["Pre-training comes first."], ["Fine-tuning comes next."], ["RAG adds passages."]]
    chat.replies += [["RAG adds passages."], ["RLHF ranks answers."]]
    first = Line()
    events.send("What is pre-training?", first, preset, True, 0)
    list(events.drain(first, request))  # type: ignore[arg-type]

    reloaded = Line()
    shown, _, _ = events.restore(reloaded, request)  # type: ignore[arg-type]
    assert _asked(shown) == ["What is pre-training?"] and len(reloaded.answers) == 1
    events.rate(reloaded, SimpleNamespace(index=1, liked=True), request)  # type: ignore[arg-type]
    assert "Pre-training comes first." in (tmp_path / "feedback.jsonl").read_text(encoding="utf-8")

    events.send("What is fine-tuning?", reloaded, preset, True, 0)
    drain = events.drain(reloaded, request)  # type: ignore[arg-type]
    next(drain)
    events.new_conversation(reloaded, request)  # type: ignore[arg-type]
    list(drain)
    assert events.restore(Line(), request)[0] == gr.skip()  # the cleared answer is not brought back

    answered = Line()  # a conversation answered in full
    events.send("What is RAG?", answered, preset, True, 0)
    list(events.drain(answered, request))  # type: ignore[arg-type]
    assert _asked(events.restore(Line(), request)[0]) == ["What is RAG?"]
    busy = Line()
    events.send("What is RLHF?", busy, preset, True, 0)  # sent before the page's load event ran
    assert events.restore(busy, request)[0] == gr.skip() and busy.questions() == ["What is RLHF?"]

    records, cleared = events.recorder.records, answered.conversation
    events.new_conversation(answered, request)  # type: ignore[arg-type]  # then cleared
    shown, _, samples = events.restore(Line(), request)  # type: ignore[arg-type]
    assert shown == gr.skip()  # the cleared chat stays empty after a reload
    assert samples["samples"][0] == ["What is RAG?"]  # its questions are still among the earlier ones
    assert [item["question"] for item in records.history("ann")][-1] == "What is RAG?"
    records.remember("ann", {"question": "What is RAG?", "answer": "RAG adds passages.", "conversation": cleared})
    assert events.restore(Line(), request)[0] == gr.skip()  # its answer written after the mark: still cleared
    lines = len(records.history("ann", with_clears=True))
    events.new_conversation(Line(), request)  # type: ignore[arg-type]  # an empty chat cleared: no mark
    assert len(records.history("ann", with_clears=True)) == lines

    events.send("What is RAG?", answered, preset, True, 0)  # the first tab's new conversation
    list(events.drain(answered, request))  # type: ignore[arg-type]
    list(events.drain(busy, request))  # type: ignore[arg-type]  # another tab's, answered after it
    events.new_conversation(answered, request)  # type: ignore[arg-type]  # the first tab cleared
    assert _asked(events.restore(Line(), request)[0]) == ["What is RLHF?"]  # the other tab's is not cleared


def test_the_line_is_no_load_event_of_its_own(fake_tutor: tuple[Tutor, FakeChat], tmp_path: Path) -> None:
    """Each page (full and embedded) has one line state holding a Line, and no event writes it:
    given the class, Gradio ran it as a second load event on every page load, which replaced the
    line `restore` had just filled (browser runs: after 7 reloads in 21, Clear cleared an empty
    line, the conversation came back, and a follow-up lost its history)."""
    from tutor.web.page import build_page

    tutor, _ = fake_tutor
    recorder = Recorder(tutor.settings.model_copy(update={"data_dir": tmp_path}), lambda: 0, lambda: 0)
    for embed in (False, True):
        page = build_page(tutor, recorder, embed=embed)
        lines = [block for block in page.blocks.values() if isinstance(block, gr.State) and block.value is not None]
        lines = [block for block in lines if isinstance(block.value, Line) or block.value is Line]
        assert len(lines) == 1
        assert isinstance(lines[0].value, Line)
        writers = [fn.name for fn in page.fns.values() if any(block is lines[0] for block in fn.outputs)]
        assert writers == []
        assert sum("load" in str(target) for fn in page.fns.values() for target in fn.targets) == 1  # restore's
