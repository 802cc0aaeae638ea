"""The chat as text: the answers as the chat shows them (citations linked to their passage, links
never clickable, unbacked sentences marked), the waiting and queued lines, the embedded chat's
footer, the Markdown export, and a user's history brought back into the chat.

Pure functions of the answers' JSON (tutor.contract), as the page keeps them.
"""

from __future__ import annotations

import html
import re
from typing import Any

from ..explain import describe_layers
from ..markers import CITATION
from ..records import CLEARED
from .render import DEFAULT_MIN_SCORE


def linked_answer(text: str, turn: int) -> str:
    """The answer with each [n] a link to passage n of this turn in the panel."""
    return CITATION.sub(lambda m: f"[[{m.group(1)}]](#passage-{turn}-{m.group(1)})", text)


def export_markdown(answers: list[dict[str, Any]]) -> str:
    """A conversation as Markdown: each question, its answer, sources and layer shares."""
    lines = ["# Tutor conversation", ""]
    for turn in answers:
        lines += [f"## {turn['question']}", "", turn["answer"], ""]
        for s in turn.get("sources") or []:
            lines.append(f"{s['n']}. {s['guide']}{' › ' + s['section'] if s.get('section') else ''} ({s['path']})")
        if turn.get("attribution"):
            lines += ["", f"*Shaped by: {describe_layers(turn['attribution'])}*"]
        lines.append("")
    return "\n".join(lines)


BUSY_PREFIX = "⏳ Busy:"


def busy_text(ahead: int) -> str:
    """What a waiting question shows instead of its answer."""
    questions = "question" if ahead == 1 else "questions"
    return f"{BUSY_PREFIX} {ahead} {questions} ahead of you. Your answer starts when the model is free."


def chat_turns(answers: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """The conversation so far as (question, answer) pairs for the model."""
    return [(a["question"], a["answer"]) for a in answers]


def unlinked(text: str) -> str:
    """The model's text with every link and e-mail address shown as code, never clickable: a link in
    an answer may come from text planted in a guide."""
    text = _MARKDOWN_LINK.sub(lambda m: f"{m.group(1)} ({m.group(2)})", text)
    return _LINK_OR_MAIL.sub(lambda m: f"`{m.group(0)}`", text)


_MARKDOWN_LINK = re.compile(r"!?\[([^\]]*)\]\(([^)\s]*)[^)]*\)")
_LINK_OR_MAIL = re.compile(
    r"\b(?:https?|ftp)://[^\s<>`()]+|\bwww\.[^\s<>`()]+|\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b", re.IGNORECASE
)


UNBACKED_MARK = " *(⚠ not in the guides)*"


def marked_answer(answer: dict[str, Any]) -> str:
    """The answer's text with each sentence that no passage supports marked in the text itself, when
    the answer was meant to come from the guides."""
    text = str(answer["answer"])
    if not answer.get("retrieval") or not answer.get("in_scope"):
        return text
    position = 0
    for sentence in answer.get("sentences") or []:
        found = text.find(sentence["text"], position)
        if found < 0:
            continue
        position = found + len(sentence["text"])
        if not sentence.get("supported_by"):
            text = text[:position] + UNBACKED_MARK + text[position:]
            position += len(UNBACKED_MARK)
    return text


QUEUED_TEXT = "⏳ Queued: answered after the current answer."
RECENT_QUESTIONS = 10  # earlier questions offered under the chat


def chat_messages(
    answers: list[dict[str, Any]],
    *,
    embed: bool = False,
    current: tuple[str, str] | None = None,
    waiting: list[str] | tuple[str, ...] = (),
    min_score: float = DEFAULT_MIN_SCORE,
) -> list[dict[str, str]]:
    """The chat as the page shows it, rebuilt from the answers kept on the server: the page never
    takes the chat's content back from the browser (a client could put a file object in it). The
    answer being written (`current`) and the questions waiting behind it follow the answers."""
    messages = []
    for turn, answer in enumerate(answers, start=1):
        reply = linked_answer(unlinked(marked_answer(answer)), turn)
        reply += embed_footer(answer, turn, min_score) if embed else ""
        messages += [{"role": "user", "content": answer["question"]}, {"role": "assistant", "content": reply}]
    if current is not None:
        text = current[1]
        shown = text if text.startswith(BUSY_PREFIX) else linked_answer(unlinked(text), len(answers) + 1)
        messages += [{"role": "user", "content": current[0]}, {"role": "assistant", "content": shown or "…"}]
    for question in waiting:
        messages += [{"role": "user", "content": question}, {"role": "assistant", "content": QUEUED_TEXT}]
    return messages


def embed_footer(answer: dict[str, Any], turn: int = 1, min_score: float = DEFAULT_MIN_SCORE) -> str:
    """The embedded chat's short account of an answer: its sources, folded (each opens to its
    passage, and a citation opens its source), and which layers shaped it."""
    parts = []
    sources = answer.get("sources") or []
    if sources:
        counted = [s for s in sources if float(s["score"]) >= min_score]
        items = "".join(
            f'<details id="passage-{turn}-{s["n"]}"><summary>[{s["n"]}] {html.escape(s["guide"])}'
            + (f" › {html.escape(s['section'])}" if s.get("section") else "")
            + ("" if float(s["score"]) >= min_score else " (related)")
            + f"</summary>{html.escape(s['text'])}</details>"
            for s in sources
        )
        names = " ".join(f"[{s['n']}]" for s in counted or sources)
        kind = "Sources" if counted else "Related passages"
        parts.append(f'<details class="embed-sources"><summary>{kind}: {names}</summary>{items}</details>')
    if answer.get("attribution"):
        parts.append(f"<small>Shaped by: {html.escape(describe_layers(answer['attribution']))}</small>")
    parts += [f"<small>⚠ {html.escape(warning)}</small>" for warning in answer.get("warnings") or []]
    return "\n\n" + "\n\n".join(parts) if parts else ""


def last_conversation(history: list[dict[str, Any]]) -> tuple[str | None, list[dict[str, Any]]]:
    """The latest conversation in a user's history (its id and answers, oldest first); none when
    the user cleared it from the chat (a mark {CLEARED: id}, Records.clear)."""
    answers = [item for item in history if CLEARED not in item]
    if not answers or not answers[-1].get("conversation"):
        return None, []
    conversation = answers[-1]["conversation"]
    if any(item.get(CLEARED) == conversation for item in history):
        return None, []
    turns = []
    for item in reversed(answers):
        if item.get("conversation") != conversation:
            break
        turns.append(item)
    restored = [
        {"sources": [], "sentences": [], "prompt": [], "timings": {}, **item, "restored": True}
        for item in reversed(turns)
    ]
    return conversation, restored


def recent_questions(history: list[dict[str, Any]]) -> list[list[str]]:
    """The user's last distinct questions, newest first, as a Dataset's samples."""
    seen: list[str] = []
    for item in reversed(history):
        question = str(item.get("question") or "")
        if question and question not in seen:
            seen.append(question)
        if len(seen) == RECENT_QUESTIONS:
            break
    return [[question] for question in seen]
