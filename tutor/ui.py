"""The Gradio chat: streamed answers with their sources. Gradio is imported here alone."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .answer import Answer, Tutor
from .errors import TutorError
from .retrieve import Turn

EXAMPLES = [
    "What are the five layers of AI model training?",
    "Which training layers change the model, and which are runtime modifications?",
    "What happens during training, step by step?",
    "Why can a base model's output not be used directly?",
]


def _text(content: Any) -> str:
    """A chat message's text, whether Gradio gives a string or a list of content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(_text(part.get("text", "")) if isinstance(part, dict) else str(part) for part in content)
    return str(content or "")


def history_turns(history: list[dict[str, Any]]) -> list[Turn]:
    """Gradio's role/content messages as (user, assistant) pairs, without the sources footer."""
    turns: list[Turn] = []
    pending: str | None = None
    for message in history:
        if message.get("role") == "user":
            pending = _text(message.get("content"))
        elif message.get("role") == "assistant" and pending is not None:
            turns.append((pending, _text(message.get("content")).split("\n\n**Sources**")[0]))
            pending = None
    return turns


def sources_markdown(answer: Answer) -> str:
    """The sources under an answer, numbered as its citations."""
    if answer.in_scope is False or not answer.sources:
        return ""
    lines = [
        f"{n}. *{p.guide}*{' › ' + p.section if p.section else ''} (score {p.score:.2f})"
        for n, p in enumerate(answer.sources, start=1)
    ]
    return "\n\n**Sources**\n" + "\n".join(lines)


def chat_reply(tutor: Tutor, message: str, history: list[dict[str, Any]]) -> Iterator[str]:
    """The growing reply for the chat window; a bad question gets a message, not a trace."""
    text = ""
    try:
        for item in tutor.stream(message, history_turns(history)):
            if isinstance(item, Answer):
                yield text + sources_markdown(item)
            else:
                text += item
                yield text
    except TutorError as exc:
        yield f"⚠️ {exc}"


def build_ui(tutor: Tutor) -> Any:
    """The chat page."""
    import gradio as gr

    return gr.ChatInterface(
        lambda message, history: chat_reply(tutor, message, history),
        title="Tutor: how AI language models are trained",
        description="Answers come from the guides, with the passages they rest on.",
        examples=EXAMPLES,
        cache_examples=False,
    )
