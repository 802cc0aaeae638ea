"""The page's events: what happens on the server when a question is sent, answered, rated,
exported or compared. `ChatEvents` and `CompareEvents` hold what every event needs (the tutor, the
recorder, the settings); each event is a method that Gradio calls. Gradio is imported at the top:
it reads the handlers' type hints (gr.Request, gr.SelectData, gr.LikeData) from this module.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import gradio as gr

from ..answer import COMPARE_MAX_TOKENS, COMPARE_WAYS, Answered, Explained, Token, Tutor, check_question
from ..config import Settings
from ..errors import TutorError
from ..gate import Queued
from ..prompts import NO_PRESET
from ..records import Recorder
from .guard import request_user
from .render import EMPTY_PANEL, compare_html, ends_a_sentence, panel_html
from .transcript import (
    BUSY_PREFIX,
    busy_text,
    chat_messages,
    chat_turns,
    export_markdown,
    last_conversation,
    marked_answer,
    recent_questions,
    unlinked,
)

Answers = list[dict[str, Any]]  # the answers of a conversation, as their JSON (tutor.contract)


def _notice(message: str) -> Any:
    return gr.update(value=f"⚠️ {message}", visible=True)


def no_notice() -> Any:
    return gr.update(value="", visible=False)


def _ask_idle() -> Any:
    return gr.update(value="Ask")


def _ask_busy() -> Any:
    return gr.update(value="Add to queue")


def _user(request: gr.Request | None) -> str | None:
    """The user the server's Guard named from a trusted SSO header, if any."""
    return request_user(request.headers if request is not None else None)


class Line:
    """One page's conversation: its answers, the question being answered and those sent while it
    is written, answered in order. Kept in a gr.State (one per browser session, shared by that
    session's events), so that a question sent during a stream is queued in view instead of being
    dropped.

    Every event reads the answers here, under the lock. They were once also a gr.State of their
    own, which Gradio copies into each event: a drain started just as the one before it finished
    was handed a copy without the last answer, and the conversation lost its first question.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.answers: Answers = []
        self.waiting: list[tuple[str, str, bool, int]] = []
        self.current: tuple[str, str] | None = None
        self.running = False
        self.conversation = uuid.uuid4().hex  # recorded with each answer: what a reload restores

    def __deepcopy__(self, memo: dict[int, Any]) -> Line:
        return Line()  # each session gets a fresh line (gr.State copies its initial value)

    def questions(self) -> list[str]:
        return [item[0] for item in self.waiting]


class ChatEvents:
    """The chat's events, for the full page or the embedded chat (`embed`: each answer ends with
    its sources and layer shares, since there is no panel)."""

    def __init__(self, tutor: Tutor, recorder: Recorder, *, embed: bool = False) -> None:
        self.tutor = tutor
        self.recorder = recorder
        self.settings: Settings = tutor.settings
        self.embed = embed
        self.min_score = float(self.settings.min_score)
        self.front_end = "embed" if embed else "page"

    def view(self, line: Line) -> list[dict[str, str]]:
        with line.lock:
            answers, current, waiting = list(line.answers), line.current, line.questions()
        return chat_messages(answers, embed=self.embed, current=current, waiting=waiting, min_score=self.min_score)

    def send(self, question: str, line: Line, preset: str, retrieval: bool, k: int) -> tuple[Any, ...]:
        """Queue the question (answered at once when nothing else is); a question that cannot be
        asked stays in the box with the reason beside it."""
        try:
            check_question(question, self.settings.max_question_chars)
        except TutorError as exc:
            return gr.skip(), gr.skip(), _notice(str(exc)), gr.skip()
        with line.lock:
            line.waiting.append((str(question), preset, bool(retrieval), int(k) if k else 0))
        return "", self.view(line), no_notice(), _ask_busy()

    def drain(self, line: Line, request: gr.Request) -> Iterator[tuple[Any, ...]]:
        """Answer the session's waiting questions one after another; a second drain of the same
        session leaves them to the one already running."""
        user = _user(request)
        with line.lock:
            if line.running:
                yield gr.skip(), gr.skip(), gr.skip(), gr.skip()
                return
            line.running = True
        try:
            while True:
                with line.lock:
                    if not line.waiting:
                        line.running, line.current = False, None
                        break
                    question, preset, retrieval, k = line.waiting.pop(0)
                    line.current = (question, "")
                yield from self._answer_one(question, preset, retrieval, k, line, user)
        finally:
            with line.lock:
                line.running, line.current = False, None
        with line.lock:  # another drain may have started meanwhile: the label follows the line
            label = _ask_busy() if line.running or line.waiting else _ask_idle()
        yield self.view(line), gr.skip(), gr.skip(), label

    def _answer_one(
        self,
        question: str,
        preset: str,
        retrieval: bool,
        k: int,
        line: Line,
        user: str | None,
    ) -> Iterator[tuple[Any, ...]]:
        """Answer one question with the conversation so far; its answer joins the line's."""
        started = time.perf_counter()
        with line.lock:
            earlier, conversation = list(line.answers), line.conversation
        turn, text, explained = len(earlier) + 1, "", None

        def cleared() -> bool:
            return line.conversation != conversation  # read under the lock

        def show(current_text: str) -> list[dict[str, str]]:
            with line.lock:
                line.current = None if cleared() else (question, current_text)
            return self.view(line)

        def panel(answer: dict[str, Any]) -> Any:
            with line.lock:
                return gr.skip() if cleared() else panel_html(answer, turn, self.min_score)

        try:
            stream = self.tutor.stream(
                question, chat_turns(earlier), preset=preset, retrieval=retrieval, k=k or None, explain=True
            )
            for event in stream:
                match event:
                    case Answered(answer=answer):  # its attribution follows
                        shown = answer.to_dict()
                        yield show(marked_answer(shown)), panel(shown), gr.skip(), _ask_busy()
                    case Explained(answer=answer):
                        explained = answer.to_dict()
                    case Queued(ahead=ahead):
                        yield show(busy_text(ahead)), gr.skip(), gr.skip(), _ask_busy()
                    case Token(text=piece):
                        text += piece
                        yield show(text), gr.skip(), gr.skip(), _ask_busy()
        except TutorError as exc:
            self.recorder.question_done(self.front_end, started=started, error=exc, user=user, question=question)
            with line.lock:
                line.current, notice = None, gr.skip() if cleared() else _notice(f"“{question[:80]}”: {exc}")
            yield self.view(line), gr.skip(), notice, _ask_busy()
            return
        assert explained is not None
        with line.lock:
            kept = not cleared()  # an answer written while the chat was cleared is not kept
            if kept:
                line.answers.append(explained)
            line.current = None
        self.recorder.question_done(  # a cleared one is recorded outside any conversation: a reload leaves it out
            self.front_end,
            started=started,
            answer={**explained, "conversation": conversation if kept else None},
            user=user,
            question=question,
        )
        yield self.view(line), panel(explained), gr.skip(), _ask_busy()

    @staticmethod
    def _answer(line: Line, turn: int) -> dict[str, Any] | None:
        """The line's answer to its `turn`th question (from 0), if there is one."""
        with line.lock:
            return line.answers[turn] if 0 <= turn < len(line.answers) else None

    def show_turn(self, line: Line, event: gr.SelectData) -> Any:
        turn = event.index // 2 if isinstance(event.index, int) else 0
        answer = self._answer(line, turn)
        return panel_html(answer, turn + 1, self.min_score) if answer is not None else gr.skip()

    def rate(self, line: Line, event: gr.LikeData, request: gr.Request) -> Any:
        answer = self._answer(line, event.index // 2 if isinstance(event.index, int) else -1)
        if answer is None:
            return gr.skip()
        self.recorder.records.feedback(
            {
                "question": answer["question"],
                "answer": answer["answer"],
                "liked": bool(event.liked),
                "preset": answer.get("preset"),
                "attribution": answer.get("attribution"),
                "corpus_version": answer.get("corpus_version"),
            },
            _user(request),
        )
        return gr.update(value="Thank you: your rating is saved.", visible=True)

    def comment(self, text: str, line: Line, request: gr.Request) -> tuple[Any, Any]:
        if not text.strip():
            return gr.skip(), gr.update(value="⚠️ Write a comment first.", visible=True)
        with line.lock:
            last = line.answers[-1] if line.answers else {}
        self.recorder.records.feedback(
            {
                "question": last.get("question"),
                "answer": last.get("answer"),
                "liked": None,
                "comment": text.strip()[:2000],
            },
            _user(request),
        )
        return "", gr.update(value="Thank you: your comment is saved.", visible=True)

    def export(self, line: Line) -> Any:
        with line.lock:
            answers = list(line.answers)
        if not answers:
            return gr.update(value=None)
        paths = self.recorder.records.export(
            {
                "conversation.md": export_markdown(answers),
                "conversation.json": json.dumps(answers, ensure_ascii=False, indent=1),
            }
        )
        return gr.update(value=[str(path) for path in paths], visible=True)

    def restore(self, line: Line, request: gr.Request) -> tuple[Any, ...]:
        """A signed-in user's earlier questions, and their last conversation back in the chat."""
        history = self.recorder.records.history(_user(request), with_clears=True)
        if not history:
            return gr.skip(), gr.skip(), gr.update(visible=False)
        conversation, answers = last_conversation(history)
        samples = gr.update(samples=recent_questions(history), visible=not self.embed)  # no room in a frame
        if not answers or conversation is None:
            return gr.skip(), gr.skip(), samples
        with line.lock:  # a question already sent on this page wins over the conversation restored
            started = bool(line.answers or line.waiting or line.running)
            if not started:
                line.answers, line.conversation = list(answers), conversation
        if started:
            return gr.skip(), gr.skip(), samples
        return self.view(line), panel_html(answers[-1], len(answers), self.min_score), samples

    def new_conversation(self, line: Line, request: gr.Request) -> str:
        """The chat's clear button: the server forgets the conversation too (a new one starts, and a
        reload does not bring the cleared one back); the panel is emptied."""
        with line.lock:
            had_answers, cleared = bool(line.answers), line.conversation
            line.waiting.clear()
            line.answers = []
            line.conversation = uuid.uuid4().hex
        if had_answers:  # clearing an empty chat marks nothing
            self.recorder.records.clear(_user(request), cleared)
        return EMPTY_PANEL


class CompareEvents:
    """The compare view's events: one question answered four ways, a layer added at a time."""

    def __init__(self, tutor: Tutor, recorder: Recorder) -> None:
        self.tutor = tutor
        self.recorder = recorder
        self.min_score = float(tutor.settings.min_score)

    def is_cut(self, text: str) -> bool:
        """Stopped by the token cap rather than by the model: no sentence end, and about the cap long."""
        if ends_a_sentence(text):
            return False
        try:
            return self.tutor.chat.count_tokens(text) >= COMPARE_MAX_TOKENS * 0.8
        except Exception:  # noqa: BLE001 (a remote engine may not count; the missing full stop says enough)
            return True

    def compare(self, question: str, preset: str, k: int, request: gr.Request) -> Iterator[tuple[Any, ...]]:
        started, user = time.perf_counter(), _user(request)
        labels = [label for label, _, _ in COMPARE_WAYS]
        texts = [""] * len(labels)
        done: list[dict[str, Any] | None] = [None] * len(labels)
        cut = [False] * len(labels)

        def columns() -> tuple[str, ...]:
            return tuple(
                compare_html(labels[i], texts[i], done[i], i, cut=cut[i], min_score=self.min_score)
                for i in range(len(labels))
            )

        try:
            chosen = preset if preset != NO_PRESET.name else None
            for way, event in self.tutor.compare(question, preset=chosen, k=int(k)):
                match event:
                    case Answered(answer=answer) | Explained(answer=answer):
                        finished = answer.to_dict()
                        texts[way], done[way] = unlinked(marked_answer(finished)), finished
                        cut[way] = self.is_cut(str(finished["answer"]))
                    case Queued(ahead=ahead):
                        texts[way] = busy_text(ahead)
                    case Token(text=piece):
                        texts[way] = ("" if texts[way].startswith(BUSY_PREFIX) else texts[way]) + piece
                yield (*columns(), no_notice())
        except TutorError as exc:
            self.recorder.question_done("compare", started=started, error=exc, user=user, question=question)
            yield (*(gr.skip() for _ in labels), _notice(str(exc)))
            return
        if done[-1] is not None:
            self.recorder.question_done("compare", started=started, answer=done[-1], user=user, question=question)

    def reset_compare(self) -> tuple[Any, ...]:
        return (*(compare_html(label, "", None, i) for i, (label, _, _) in enumerate(COMPARE_WAYS)), no_notice())
