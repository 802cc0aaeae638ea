"""The Gradio page: the chat with its "Why this answer" panel, the four-way compare view, and the
chat alone for a frame (/embed).

The layout, one function per part of the page, and the wiring of the events (tutor.web.page_events).
What the page shows is built by the pure functions of tutor.web.render and tutor.web.transcript;
its styles and script are in tutor.web.page_assets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from ..answer import COMPARE_MAX_TOKENS, COMPARE_WAYS, Tutor
from ..config import Settings
from ..prompts import NO_PRESET
from ..records import Recorder
from .page_assets import NEXT_LAYER_JS, PRESENTER_JS, RESET_JS
from .page_events import ChatEvents, CompareEvents, Line, no_notice
from .render import EMPTY_PANEL, compare_html

EXAMPLES = [
    "What are the five layers of AI model training?",
    "Which training layers change the model, and which are runtime modifications?",
    "What is RLHF?",
    "Why can a base model's output not be used directly?",
    "What is the capital of France?",
]
TITLE = "Tutor: how AI language models are trained"


@dataclass(frozen=True)
class ChatParts:
    """The chat's components that its events read or write."""

    line: gr.State  # the conversation (page_events.Line)
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
        line = session_line()
        _header(settings)
        with gr.Tabs():
            with gr.Tab("Chat", id="chat"), gr.Row():
                chat, feedback = _chat_tab(line, settings, [*tutor.presets, NO_PRESET.name])
            with gr.Tab("Compare", id="compare"):
                _compare_tab(CompareEvents(tutor, recorder), chat.preset, chat.k)
        _wire_chat(events, chat)
        _wire_feedback(events, chat, feedback)
        page.load(events.restore, line, [chat.chatbot, chat.panel, chat.earlier])
    return page


def session_line() -> gr.State:
    """The session's conversation line. An instance, never the class: Gradio runs a callable value
    as a load event of its own on every page load, which put a new, empty line in the state while
    `restore` filled the first one, so after about 1 reload in 3 the page showed the conversation
    and its later events (Clear, a follow-up) read an empty line. A session's first read deep-copies
    the instance, and `Line.__deepcopy__` gives each session a line of its own."""
    return gr.State(Line())


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


def _chat_tab(line: gr.State, settings: Settings, presets: list[str]) -> tuple[ChatParts, FeedbackParts]:
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
    chat = ChatParts(line, chatbot, question, question_error, ask, message, panel, earlier, preset, retrieval, k)
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
    send_inputs = [chat.question, chat.line, chat.preset, chat.retrieval, chat.k]
    send_outputs = [chat.question, chat.chatbot, chat.question_error, chat.ask]
    drain_outputs = [chat.chatbot, chat.panel, chat.message, chat.ask]
    for trigger in (chat.question.submit, chat.ask.click):
        # Each send is queued at once ("multiple": a send during an answer is never dropped);
        # the session's one drain answers them in order. The model's own line (tutor.gate)
        # orders all sessions and says "N ahead".
        trigger(events.send, send_inputs, send_outputs, trigger_mode="multiple", show_progress="hidden").then(
            events.drain, chat.line, drain_outputs, concurrency_limit=None, show_progress="hidden"
        )
    chat.question.input(lambda: no_notice(), None, chat.question_error, queue=False, show_progress="hidden")
    chat.chatbot.like(events.rate, chat.line, chat.message)
    chat.chatbot.clear(events.new_conversation, chat.line, chat.panel)


def _wire_feedback(events: ChatEvents, chat: ChatParts, feedback: FeedbackParts) -> None:
    """The full page's events beyond the chat: an answer picked shows its panel, comments, export,
    and an earlier question asked again."""
    chat.chatbot.select(events.show_turn, chat.line, chat.panel)
    feedback.send_remark.click(events.comment, [feedback.remark, chat.line], [feedback.remark, chat.message])
    feedback.export_button.click(events.export, chat.line, feedback.exported)
    chat.earlier.click(pick_earlier, chat.earlier, chat.question)


def pick_earlier(sample: Any) -> Any:
    return str(sample[0]) if isinstance(sample, list) and sample else gr.skip()


def _embed_page(events: ChatEvents) -> gr.Blocks:
    """The chat alone, for a frame: the default preset, retrieval on, the default number of passages."""
    with gr.Blocks(title="Tutor", fill_height=True) as page:
        line = session_line()
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
        page.load(events.restore, line, [chatbot, chat.panel, chat.earlier])
    return page
