"""The Gradio page: the chat with its "Why this answer" panel, the four-way compare view, and the
chat alone for a frame (/embed).

The events are methods of `ChatEvents` and `CompareEvents`; the layout is one function per part of
the page. What the page shows is built by the pure functions of tutor.web.render and
tutor.web.transcript, its styles and script are in tutor.web.page_assets. Gradio is imported at
the top: it reads the event handlers' type hints (gr.Request, gr.SelectData, gr.LikeData) from
this module.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import gradio as gr

from ..answer import COMPARE_MAX_TOKENS, COMPARE_WAYS, Answered, Explained, Token, Tutor, check_question
from ..config import Settings
from ..errors import TutorError
from ..gate import Queued
from ..prompts import NO_PRESET
from ..records import Recorder
from .guard import request_user
from .page_assets import NEXT_LAYER_JS, PRESENTER_JS, RESET_JS
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

EXAMPLES = [
    "What are the five layers of AI model training?",
    "Which training layers change the model, and which are runtime modifications?",
    "What is RLHF?",
    "Why can a base model's output not be used directly?",
    "What is the capital of France?",
]
TITLE = "Tutor: how AI language models are trained"

Answers = list[dict[str, Any]]  # the answers of a conversation, as their JSON (tutor.contract)


def _notice(message: str) -> Any:
    return gr.update(value=f"⚠️ {message}", visible=True)


def _no_notice() -> Any:
    return gr.update(value="", visible=False)


def _ask_idle() -> Any:
    return gr.update(value="Ask")


def _ask_busy() -> Any:
    return gr.update(value="Add to queue")


def _user(request: gr.Request | None) -> str | None:
    """The user the server's Guard named from a trusted SSO header, if any."""
    return request_user(request.headers if request is not None else None)


class Line:
    """One page's questions: the one being answered and those sent while it is written, answered
    in order. Kept in a gr.State (one per browser session, shared by that session's events), so
    that a question sent during a stream is queued in view instead of being dropped."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
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

    def view(self, answers: Answers, line: Line) -> list[dict[str, str]]:
        with line.lock:
            current, waiting = line.current, line.questions()
        return chat_messages(answers, embed=self.embed, current=current, waiting=waiting, min_score=self.min_score)

    def send(
        self, question: str, line: Line, answers: Answers, preset: str, retrieval: bool, k: int
    ) -> tuple[Any, ...]:
        """Queue the question (answered at once when nothing else is); a question that cannot be
        asked stays in the box with the reason beside it."""
        try:
            check_question(question, self.settings.max_question_chars)
        except TutorError as exc:
            return gr.skip(), gr.skip(), _notice(str(exc)), gr.skip()
        with line.lock:
            line.waiting.append((str(question), preset, bool(retrieval), int(k) if k else 0))
        return "", self.view(answers, line), _no_notice(), _ask_busy()

    def drain(self, line: Line, answers: Answers, request: gr.Request) -> Iterator[tuple[Any, ...]]:
        """Answer the session's waiting questions one after another; a second drain of the same
        session leaves them to the one already running."""
        user = _user(request)
        with line.lock:
            if line.running:
                yield gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
                return
            line.running = True
        answers = list(answers)
        try:
            while True:
                with line.lock:
                    if not line.waiting:
                        line.running, line.current = False, None
                        break
                    question, preset, retrieval, k = line.waiting.pop(0)
                    line.current = (question, "")
                yield from self._answer_one(question, preset, retrieval, k, line, answers, user)  # appends
        finally:
            with line.lock:
                line.running, line.current = False, None
        with line.lock:  # another drain may have started meanwhile: the label follows the line
            label = _ask_busy() if line.running or line.waiting else _ask_idle()
        yield self.view(answers, line), gr.skip(), gr.skip(), gr.skip(), label

    def _answer_one(
        self,
        question: str,
        preset: str,
        retrieval: bool,
        k: int,
        line: Line,
        answers: Answers,
        user: str | None,
    ) -> Iterator[tuple[Any, ...]]:
        started, turn = time.perf_counter(), len(answers) + 1
        text, explained = "", None

        def show(current_text: str) -> list[dict[str, str]]:
            with line.lock:
                line.current = (question, current_text)
            return self.view(answers, line)

        try:
            stream = self.tutor.stream(
                question, chat_turns(answers), preset=preset, retrieval=retrieval, k=k or None, explain=True
            )
            for event in stream:
                match event:
                    case Answered(answer=answer):  # its attribution follows
                        shown = answer.to_dict()
                        panel = panel_html(shown, turn, self.min_score)
                        yield show(marked_answer(shown)), panel, gr.skip(), gr.skip(), _ask_busy()
                    case Explained(answer=answer):
                        explained = answer.to_dict()
                    case Queued(ahead=ahead):
                        yield show(busy_text(ahead)), gr.skip(), gr.skip(), gr.skip(), _ask_busy()
                    case Token(text=piece):
                        text += piece
                        yield show(text), gr.skip(), gr.skip(), gr.skip(), _ask_busy()
        except TutorError as exc:
            self.recorder.question_done(self.front_end, started=started, error=exc, user=user, question=question)
            with line.lock:
                line.current = None
            yield self.view(answers, line), gr.skip(), gr.skip(), _notice(f"“{question[:80]}”: {exc}"), _ask_busy()
            return
        assert explained is not None
        self.recorder.question_done(
            self.front_end,
            started=started,
            answer={**explained, "conversation": line.conversation},
            user=user,
            question=question,
        )
        answers.append(explained)
        with line.lock:
            line.current = None
        yield (
            self.view(answers, line),
            panel_html(explained, turn, self.min_score),
            list(answers),
            gr.skip(),
            _ask_busy(),
        )

    def show_turn(self, answers: Answers, event: gr.SelectData) -> Any:
        turn = event.index // 2 if isinstance(event.index, int) else 0
        return panel_html(answers[turn], turn + 1, self.min_score) if 0 <= turn < len(answers) else gr.skip()

    def rate(self, answers: Answers, event: gr.LikeData, request: gr.Request) -> Any:
        turn = event.index // 2 if isinstance(event.index, int) else -1
        if not 0 <= turn < len(answers):
            return gr.skip()
        answer = answers[turn]
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

    def comment(self, text: str, answers: Answers, request: gr.Request) -> tuple[Any, Any]:
        if not text.strip():
            return gr.skip(), gr.update(value="⚠️ Write a comment first.", visible=True)
        last = answers[-1] if answers else {}
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

    def export(self, answers: Answers) -> Any:
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
        history = self.recorder.records.history(_user(request))
        if not history:
            return gr.skip(), gr.skip(), gr.skip(), gr.update(visible=False)
        conversation, answers = last_conversation(history)
        samples = gr.update(samples=recent_questions(history), visible=not self.embed)  # no room in a frame
        if not answers or conversation is None:
            return gr.skip(), gr.skip(), gr.skip(), samples
        line.conversation = conversation
        turn = len(answers)
        return answers, self.view(answers, line), panel_html(answers[-1], turn, self.min_score), samples

    def new_conversation(self, line: Line) -> tuple[Any, ...]:
        """The chat's clear button: the server forgets the conversation too (a new one starts)."""
        with line.lock:
            line.waiting.clear()
            line.conversation = uuid.uuid4().hex
        return [], EMPTY_PANEL


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
                yield (*columns(), _no_notice())
        except TutorError as exc:
            self.recorder.question_done("compare", started=started, error=exc, user=user, question=question)
            yield (*(gr.skip() for _ in labels), _notice(str(exc)))
            return
        if done[-1] is not None:
            self.recorder.question_done("compare", started=started, answer=done[-1], user=user, question=question)

    def reset_compare(self) -> tuple[Any, ...]:
        return (*(compare_html(label, "", None, i) for i, (label, _, _) in enumerate(COMPARE_WAYS)), _no_notice())


@dataclass(frozen=True)
class ChatParts:
    """The chat's components that its events read or write."""

    answers: gr.State
    line: gr.State
    chatbot: gr.Chatbot
    question: gr.Textbox
    question_error: gr.Markdown
    ask: gr.Button
    message: gr.Markdown
    panel: gr.HTML
    earlier: gr.Dataset
    preset: Any  # a Dropdown on the page; in a frame a State: the default preset, retrieval, passages
    retrieval: Any
    k: Any


@dataclass(frozen=True)
class FeedbackParts:
    """The full page's comment box and export."""

    remark: gr.Textbox
    send_remark: gr.Button
    export_button: gr.Button
    exported: gr.File


def build_page(tutor: Tutor, recorder: Recorder, *, embed: bool = False) -> gr.Blocks:
    """The page: chat with the panel, and the compare view. Mount it with page_assets' CSS and HEAD.

    `embed` builds the chat alone, for a frame in an intranet page: no header, settings, panel or
    compare view; each answer ends with its sources (folded) and layer shares.
    """
    events = ChatEvents(tutor, recorder, embed=embed)
    if embed:
        return _embed_page(events)
    settings = tutor.settings
    with gr.Blocks(title=TITLE) as page:
        answers, line = gr.State([]), gr.State(Line)
        _header(settings)
        with gr.Tabs():
            with gr.Tab("Chat", id="chat"), gr.Row():
                chat, feedback = _chat_tab(answers, line, settings, [*tutor.presets, NO_PRESET.name])
            with gr.Tab("Compare", id="compare"):
                _compare_tab(CompareEvents(tutor, recorder), chat.preset, chat.k)
        _wire_chat(events, chat)
        _wire_feedback(events, chat, feedback)
        page.load(events.restore, line, [answers, chat.chatbot, chat.panel, chat.earlier])
    return page


def _header(settings: Settings) -> None:
    """The title, what the page is for, the links to the API and sign-out, and presenter mode."""
    sign_out = " · [Sign out](logout)" if settings.auth_token else ""
    gr.Markdown(
        f"# {TITLE}\nAnswers come from the guides. "
        "Beside each answer, see which layer shaped it: the system prompt, the passages, "
        f"or the model's own knowledge. [API](docs){sign_out}",
        elem_id="header",
    )
    presenter = gr.Checkbox(label="Presenter mode (large text, full width)", value=False, elem_id="presenter")
    presenter.change(None, presenter, None, js=PRESENTER_JS)


def _chat_tab(
    answers: gr.State, line: gr.State, settings: Settings, presets: list[str]
) -> tuple[ChatParts, FeedbackParts]:
    """The chat, its settings, feedback and export, and the panel beside it (inside a Row)."""
    with gr.Column(scale=3):
        chatbot = gr.Chatbot(label="Conversation", height="55vh", elem_id="chat", feedback_options=("Like", "Dislike"))
        # The reason a question cannot be asked shows right above the box, never below the fold.
        question_error = gr.Markdown(visible=False, elem_classes=["notice"], elem_id="question-error")
        with gr.Row(elem_id="ask-row"):
            question = gr.Textbox(
                label="Your question",
                placeholder="Ask about how models are trained",
                scale=5,
                max_lines=5,
                elem_id="question",
                autofocus=True,
            )
            ask = gr.Button("Ask", variant="primary", scale=1, elem_id="ask")
        gr.HTML('<button type="button" class="why-open">Why this answer ›</button>')
        message = gr.Markdown(visible=False, elem_classes=["notice"], elem_id="notice")
        earlier = gr.Dataset(
            components=[question],
            samples=[],
            label="Your earlier questions (click to ask again)",
            visible=False,
            elem_id="history",
        )
        gr.Examples(EXAMPLES, inputs=question, label="Example questions")
        with gr.Accordion("Settings", open=False), gr.Row():
            preset = gr.Dropdown(presets, value=settings.preset, label="System prompt preset", elem_id="preset")
            retrieval = gr.Checkbox(value=True, label="Retrieval: use the guides", elem_id="retrieval")
            k = gr.Slider(1, 8, value=settings.k, step=1, label="Passages (most)", elem_id="k")
        with gr.Accordion("Feedback and export", open=False):
            feedback = FeedbackParts(
                remark=gr.Textbox(label="Comment on the last answer (optional)", elem_id="comment"),
                send_remark=gr.Button("Send comment", elem_id="send-comment"),
                export_button=gr.Button("Export conversation (Markdown and JSON)", elem_id="export"),
                exported=gr.File(
                    label="Exported conversation", file_count="multiple", visible=False, elem_id="exported"
                ),
            )
    with gr.Column(scale=2, elem_id="why-column"):
        panel = gr.HTML(EMPTY_PANEL, elem_id="why")
    chat = ChatParts(
        answers, line, chatbot, question, question_error, ask, message, panel, earlier, preset, retrieval, k
    )
    return chat, feedback


def _compare_tab(events: CompareEvents, preset: gr.Dropdown, k: gr.Slider) -> None:
    """One question answered four ways, with the chat's preset and number of passages."""
    gr.Markdown(
        "One question answered four ways, adding one layer at a time: the live RAG demonstration. "
        f"Each answer stops at {COMPARE_MAX_TOKENS} tokens, about two short sentences. "
        "“Next layer” shows one column at a time."
    )
    with gr.Row(elem_id="compare-ask-row"):
        question = gr.Textbox(label="Question", scale=5, elem_id="compare-question", value=EXAMPLES[0])
        run = gr.Button("Compare", variant="primary", scale=1, elem_id="compare-run")
    with gr.Row():
        next_layer = gr.Button("Next layer", elem_id="compare-next", size="sm")
        reset = gr.Button("Reset", elem_id="compare-reset", size="sm")
    notice = gr.Markdown(visible=False, elem_classes=["notice"])
    with gr.Row(elem_id="compare-row", equal_height=False):
        columns = [
            gr.HTML(compare_html(label, "", None, i), elem_id=f"compare-{i}", elem_classes=["compare-col"])
            for i, (label, _, _) in enumerate(COMPARE_WAYS)
        ]
    inputs, outputs = [question, preset, k], [*columns, notice]
    run.click(events.compare, inputs, outputs, concurrency_limit=None)
    question.submit(events.compare, inputs, outputs, concurrency_limit=None)
    next_layer.click(None, None, None, js=NEXT_LAYER_JS)
    reset.click(events.reset_compare, None, outputs, js=RESET_JS)


def _wire_chat(events: ChatEvents, chat: ChatParts) -> None:
    """The events of the chat itself, the same on the page and in a frame."""
    send_inputs = [chat.question, chat.line, chat.answers, chat.preset, chat.retrieval, chat.k]
    send_outputs = [chat.question, chat.chatbot, chat.question_error, chat.ask]
    drain_outputs = [chat.chatbot, chat.panel, chat.answers, chat.message, chat.ask]
    for trigger in (chat.question.submit, chat.ask.click):
        # Each send is queued at once ("multiple": a send during an answer is never dropped);
        # the session's one drain answers them in order. The model's own line (tutor.gate)
        # orders all sessions and says "N ahead".
        trigger(events.send, send_inputs, send_outputs, trigger_mode="multiple", show_progress="hidden").then(
            events.drain, [chat.line, chat.answers], drain_outputs, concurrency_limit=None, show_progress="hidden"
        )
    chat.question.input(lambda: _no_notice(), None, chat.question_error, queue=False, show_progress="hidden")
    chat.chatbot.like(events.rate, chat.answers, chat.message)
    chat.chatbot.clear(events.new_conversation, chat.line, [chat.answers, chat.panel])


def _wire_feedback(events: ChatEvents, chat: ChatParts, feedback: FeedbackParts) -> None:
    """The full page's events beyond the chat: an answer picked shows its panel, comments, export,
    and an earlier question asked again."""
    chat.chatbot.select(events.show_turn, chat.answers, chat.panel)
    feedback.send_remark.click(events.comment, [feedback.remark, chat.answers], [feedback.remark, chat.message])
    feedback.export_button.click(events.export, chat.answers, feedback.exported)
    chat.earlier.click(pick_earlier, chat.earlier, chat.question)


def pick_earlier(sample: Any) -> Any:
    return str(sample[0]) if isinstance(sample, list) and sample else gr.skip()


def _embed_page(events: ChatEvents) -> gr.Blocks:
    """The chat alone, for a frame: the default preset, retrieval on, the default number of passages."""
    with gr.Blocks(title="Tutor", fill_height=True) as page:
        answers, line = gr.State([]), gr.State(Line)
        chatbot = gr.Chatbot(
            label=TITLE,
            show_label=False,
            elem_id="chat",
            scale=1,
            feedback_options=("Like", "Dislike"),
            placeholder="Ask about how AI language models are trained: answers come from the guides.",
        )
        question_error = gr.Markdown(visible=False, elem_classes=["notice"], elem_id="question-error")
        with gr.Row(elem_id="ask-row"):
            question = gr.Textbox(
                label="Your question", placeholder="Ask about model training", scale=5, max_lines=4, elem_id="question"
            )
            ask = gr.Button("Ask", variant="primary", scale=1, elem_id="ask")
        message = gr.Markdown(visible=False, elem_classes=["notice"], elem_id="notice")
        chat = ChatParts(
            answers=answers,
            line=line,
            chatbot=chatbot,
            question=question,
            question_error=question_error,
            ask=ask,
            message=message,
            panel=gr.HTML(visible=False),
            earlier=gr.Dataset(components=[question], samples=[], visible=False),
            preset=gr.State(None),
            retrieval=gr.State(True),
            k=gr.State(None),
        )
        _wire_chat(events, chat)
        page.load(events.restore, line, [answers, chatbot, chat.panel, chat.earlier])
    return page
