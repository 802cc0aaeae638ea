"""The Gradio UI: the chat with its "Why this answer" panel, and the four-way compare view.

The page is built from plain functions of an answer's JSON (`panel_html`, `linked_answer`,
`export_markdown`), so that what it shows is tested without a browser. Gradio is imported at the
top: it reads the event handlers' type hints (gr.SelectData, gr.LikeData) from this module.
"""

from __future__ import annotations

import html
import json
import re
import time
from collections.abc import Iterator
from typing import Any

import gradio as gr

from .answer import COMPARE_MAX_TOKENS, COMPARE_WAYS, PASSAGES_INTRO, Answer, Tutor
from .errors import TutorError
from .explain import LAYER_NAMES, describe_layers
from .gate import Queued
from .ops import Ops
from .prompts import NO_PRESET

EXAMPLES = [
    "What are the five layers of AI model training?",
    "Which training layers change the model, and which are runtime modifications?",
    "What is RLHF?",
    "Why can a base model's output not be used directly?",
    "What is the capital of France?",
]

SHORT_NAMES = {"prompt": "prompt", "retrieval": "passages", "model": "model"}
LAYER_COLOURS = {
    "prompt": "#0072B2",
    "retrieval": "#E69F00",
    "model": "#6E6E6E",
}  # Okabe-Ito, safe for colour blindness

CSS = """
.layer-bar { display: flex; height: 2.2em; border-radius: 6px; overflow: hidden; margin: .4em 0; }
.layer-bar > span { display: flex; align-items: center; justify-content: center; font-weight: 600;
  font-size: .85em; white-space: nowrap; overflow: hidden; }
.layer-prompt { background: #0072B2; color: #fff; }
.layer-retrieval { background: #E69F00; color: #000; }
.layer-model { background: #6E6E6E; color: #fff; }
.legend { display: flex; gap: 1em; flex-wrap: wrap; font-size: .9em; padding: 0; list-style: none; }
.swatch { display: inline-block; width: .9em; height: .9em; border-radius: 2px; margin-right: .3em;
  vertical-align: -.1em; }
.why .verdict { font-size: 1.1em; font-weight: 600; margin: .3em 0; }
.why .sentence { border-left: 5px solid #6E6E6E; padding: .2em .6em; margin: .3em 0; list-style: none; }
.why .sentence.guided { border-left-color: #E69F00; }
.why .sentence.prompted { border-left-color: #0072B2; }
.why .tag { font-size: .8em; font-weight: 600; border-radius: 4px; padding: 0 .4em; margin-left: .4em;
  border: 1px solid currentColor; }
.why .passage { border: 1px solid #ccc; border-radius: 6px; padding: .4em .6em; margin: .4em 0; }
.why .warnings { border: 2px solid #B00020; border-radius: 6px; padding: .4em .6em .4em 1.6em; font-weight: 600; }
.why mark.planted { background: #FDE7E9; color: #B00020; text-decoration: line-through; }
.why .passage.flash { outline: 3px solid #E69F00; }
.why .prompt-part { white-space: pre-wrap; border-left: 5px solid; padding: .2em .6em; margin: .2em 0;
  font-family: ui-monospace, monospace; font-size: .85em; }
.why .part-system { border-color: #0072B2; } .why .part-passages { border-color: #E69F00; }
.why .part-history { border-color: #999; } .why .part-question { border-color: #009E73; }
.why details { margin: .5em 0; } .why summary { cursor: pointer; font-weight: 600; }
.notice { color: #B00020; font-weight: 600; }
html.tutor-large .gradio-container { zoom: 1.3; }
"""

# Citations link to their passage in the panel; a click opens and highlights it instead of navigating.
HEAD = """
<script>
document.addEventListener('click', (event) => {
  const link = event.target.closest('a[href^="#passage-"]');
  if (!link) return;
  event.preventDefault();
  const target = document.getElementById(link.getAttribute('href').slice(1));
  if (!target) return;
  const details = target.closest('details');
  if (details) details.open = true;
  target.scrollIntoView({behavior: 'smooth', block: 'center'});
  target.classList.add('flash');
  setTimeout(() => target.classList.remove('flash'), 2000);
}, true);
</script>
"""

LARGE_TEXT_JS = "(on) => { document.documentElement.classList.toggle('tutor-large', on); return on; }"

EMPTY_PANEL = (
    '<div class="why"><h3>Why this answer</h3><p>Ask a question: this panel then shows which layer shaped the '
    "answer (the system prompt, the passages from the guides, or the model's own knowledge), the passages, "
    "and the prompt that was sent.</p></div>"
)

_CITATION = re.compile(r"\[(\d+)\]")


def linked_answer(text: str, turn: int) -> str:
    """The answer with each [n] a link to passage n of this turn in the panel."""
    return _CITATION.sub(lambda m: f"[[{m.group(1)}]](#passage-{turn}-{m.group(1)})", text)


def layer_bar(shares: dict[str, Any] | None) -> str:
    """A bar of the three shares, each segment labelled in words, not colour alone."""
    if not shares:
        return '<p class="pending" role="status">Measuring which layer shaped this answer…</p>'
    order = ("prompt", "retrieval", "model")
    label = describe_layers(shares)
    segments = "".join(
        f'<span class="layer-{layer}" style="width:{100 * float(shares[layer]):.1f}%" '
        f'title="{LAYER_NAMES[layer]} {float(shares[layer]):.0%}">'
        f"{SHORT_NAMES[layer] if float(shares[layer]) >= 0.25 else ''} {float(shares[layer]):.0%}</span>"
        for layer in order
        if float(shares[layer]) >= 0.005
    )
    legend = "".join(
        f'<li><span class="swatch" style="background:{LAYER_COLOURS[layer]}"></span>'
        f'<span data-layer="{layer}">{LAYER_NAMES[layer]}: {float(shares[layer]):.0%}</span></li>'
        for layer in order
    )
    return (
        f'<div class="layer-bar" role="img" aria-label="Shaped by: {html.escape(label)}">{segments}</div>'
        f'<ul class="legend">{legend}</ul>'
    )


def verdict(answer: dict[str, Any]) -> str:
    """One plain sentence: did this answer come from the guides?"""
    shares = answer.get("attribution")
    if answer.get("in_scope") is False:
        return "The guides do not cover this question, so the tutor did not let the model invent an answer."
    if not answer.get("retrieval"):
        if answer.get("preset") == NO_PRESET.name:
            return "The model alone: no passages and only a neutral system prompt."
        return "Retrieval was off: this answer is the model's own knowledge, under the system prompt."
    sentences = answer.get("sentences") or []
    unbacked = [s for s in sentences if not s.get("supported_by")]
    if sentences and 2 * len(unbacked) >= len(sentences):
        return (
            "Not from the guides: no passage supports "
            + ("this answer" if len(unbacked) == len(sentences) else "most of this answer")
            + ". Read it as the model's own knowledge, whatever its layer shares."
        )
    if not shares:
        return "Answered from the guides' passages; measuring how much they shaped it…"
    top = max(("prompt", "retrieval", "model"), key=lambda layer: float(shares[layer]))
    if unbacked and top == "retrieval":
        some = "1 sentence" if len(unbacked) == 1 else f"{len(unbacked)} sentences"
        return f"Mostly from the guides, except {some} that no passage supports (marked in the answer)."
    return {
        "retrieval": "Mostly from the guides: the passages shaped most of this answer.",
        "model": "Mostly the model's own knowledge: the passages changed little of this answer.",
        "prompt": "Mostly the system prompt: it shaped this answer more than the passages did.",
    }[top]


def _sentence_item(sentence: dict[str, Any], turn: int) -> str:
    layers = sentence.get("layers")
    cited = sentence.get("supported_by") or []
    if cited:
        kind, tag = "guided", "from " + ", ".join(f'<a href="#passage-{turn}-{n}">passage {n}</a>' for n in cited)
    elif layers and float(layers["prompt"]) > max(float(layers["retrieval"]), float(layers["model"])):
        kind, tag = "prompted", "from the system prompt"
    else:
        kind, tag = "own", "model's own knowledge: no passage supports it"
    detail = f" · support {float(sentence['support']):.2f}" if cited else ""
    if layers:
        detail += f" · {describe_layers(layers)}"
    return (
        f'<li class="sentence {kind}">{html.escape(sentence["text"])}'
        f'<span class="tag">{tag}</span><br><small>{detail.lstrip(" ·")}</small></li>'
    )


def _prompt_parts(prompt: list[dict[str, str]]) -> str:
    """The messages sent to the model, each part marked by the layer it belongs to."""
    parts = []
    for i, message in enumerate(prompt):
        content = message["content"]
        if i == 0:
            parts.append(("system", "System prompt (layer: system prompt)", content))
        elif i < len(prompt) - 1:
            parts.append(("history", f"Earlier turn, {message['role']} (conversation history)", content))
        elif content.startswith(PASSAGES_INTRO) and "\n\nQuestion: " in content:
            passages, question = content.rsplit("\n\nQuestion: ", 1)
            parts.append(("passages", "Passages (layer: retrieval)", passages))
            parts.append(("question", "Question", "Question: " + question))
        else:
            parts.append(("question", "Question", content))
    return "".join(
        f'<div class="prompt-part part-{kind}"><strong>{label}</strong>\n{html.escape(text)}</div>'
        for kind, label, text in parts
    )


def _steps(answer: dict[str, Any]) -> str:
    timings = answer.get("timings") or {}
    sources = answer.get("sources") or []
    rewritten = answer.get("query") != answer.get("question")
    steps = [
        f"<b>Search query.</b> {html.escape(str(answer.get('query')))}"
        + (
            " (the follow-up joined to the previous question and the first sentence of its answer)"
            if rewritten
            else " (the question as asked)"
        ),
    ]
    if not answer.get("retrieval"):
        steps.append("<b>Passages.</b> Retrieval was off: no passage was looked up.")
    elif sources:
        found = ", ".join(f"[{s['n']}] {float(s['score']):.2f}" for s in sources)
        steps.append(
            f"<b>Passages.</b> {len(sources)} passage(s) from the guides were similar enough to the question "
            f"(similarity {found}) and went into the prompt, in {timings.get('retrieve_s', 0):.2f} s."
        )
    else:
        steps.append("<b>Passages.</b> No passage was similar enough: the question is outside the guides.")
    prompt = answer.get("prompt") or []
    if prompt:
        steps.append(
            f"<b>Prompt.</b> {len(prompt)} messages: the system prompt first, then the conversation, then the "
            "passages and the question (see “Full prompt sent”)."
        )
        first = timings.get("first_token_s")
        steps.append(
            f"<b>Answer.</b> The model {html.escape(str(answer.get('model')))} wrote the answer; its first word came "
            f"after {first or 0:.2f} s, the whole answer after {timings.get('total_s', 0):.2f} s."
        )
    else:
        steps.append("<b>Answer.</b> The model was not asked: the tutor gave its fixed out-of-scope reply.")
    shares = answer.get("attribution")
    if shares:
        steps.append(
            "<b>Attribution.</b> The answer was scored again, without generating, under the prompt without "
            "passages and under a neutral system prompt; how much each layer raised the answer's likelihood "
            f"is its share ({html.escape(str(shares.get('method')))}"
            + (f", {timings['explain_s']:.2f} s" if timings.get("explain_s") is not None else "")
            + ")."
        )
    return "<ol>" + "".join(f"<li>{step}</li>" for step in steps) + "</ol>"


def _passage_text(source: dict[str, Any]) -> str:
    """A passage as the guide has it, with the sentences left out of the prompt marked."""
    text = html.escape(source["text"])
    for sentence in source.get("planted") or []:
        title = "Left out of the prompt: it reads as an instruction to the model"
        marked = f'<mark class="planted" title="{title}">⚠ {html.escape(sentence)}</mark>'
        text = text.replace(html.escape(sentence), marked)
    return text


def panel_html(answer: dict[str, Any], turn: int) -> str:
    """The "Why this answer" panel of one answer (the JSON of `Answer.to_dict`)."""
    sources = answer.get("sources") or []
    sentences = "".join(_sentence_item(s, turn) for s in answer.get("sentences") or [])
    bar = layer_bar(answer.get("attribution"))
    if answer.get("attribution_error"):
        bar = f'<p class="notice" role="status">Attribution unavailable: {html.escape(answer["attribution_error"])}</p>'

    passages = "".join(
        f'<div class="passage" id="passage-{turn}-{s["n"]}"><strong>[{s["n"]}] {html.escape(s["guide"])}</strong>'
        f"{' › ' + html.escape(s['section']) if s.get('section') else ''} · <small>{html.escape(s['path'])} · "
        f"similarity {float(s['score']):.2f}</small><br>{_passage_text(s)}</div>"
        for s in sources
    )
    warnings = "".join(f"<li>{html.escape(w)}</li>" for w in answer.get("warnings") or [])
    if warnings:
        warnings = f'<ul class="warnings" role="alert">{warnings}</ul>'
    prompt = answer.get("prompt") or []
    system = prompt[0]["content"] if prompt else ""
    return (
        f'<div class="why" data-turn="{turn}"><h3>Why this answer</h3>'
        f"{warnings}"
        f'<p class="verdict">{verdict(answer)}</p>{bar}'
        f'<h4>Sentence by sentence</h4><ol class="sentences">{sentences}</ol>'
        f'<details open class="passages"><summary>Passages ({len(sources)})</summary>'
        f"{passages or '<p>No passages went into the prompt.</p>'}</details>"
        f'<details class="system"><summary>System prompt in force: {html.escape(str(answer.get("preset")))}</summary>'
        f'<div class="prompt-part part-system">{html.escape(system) or "(none: the model was not asked)"}</div>'
        "</details>"
        f'<details class="full-prompt"><summary>Full prompt sent</summary>{_prompt_parts(prompt)}</details>'
        f'<details class="steps"><summary>Step by step</summary>{_steps(answer)}</details></div>'
    )


def compare_html(label: str, text: str, answer: dict[str, Any] | None) -> str:
    """One column of the compare view."""
    body = _render_markdown(text) if text else "<em>waiting…</em>"
    footer = ""
    if answer is not None:
        footer = layer_bar(answer.get("attribution")) + f"<p><small>{verdict(answer)}</small></p>"
    heading = f"<h3>{html.escape(label)}</h3>"
    return f'<div class="why compare-way">{heading}<div class="compare-answer">{body}</div>{footer}</div>'


def _render_markdown(text: str) -> str:
    """The model's Markdown as HTML, with any HTML in it escaped."""
    from markdown_it import MarkdownIt

    return str(MarkdownIt("commonmark", {"html": False}).render(text))


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


def chat_messages(answers: list[dict[str, Any]], *, embed: bool = False) -> list[dict[str, str]]:
    """The chat as the page shows it, rebuilt from the answers kept on the server: the page never
    takes the chat's content back from the browser (a client could put a file object in it)."""
    messages = []
    for turn, answer in enumerate(answers, start=1):
        reply = linked_answer(unlinked(marked_answer(answer)), turn) + (embed_footer(answer) if embed else "")
        messages += [{"role": "user", "content": answer["question"]}, {"role": "assistant", "content": reply}]
    return messages


def embed_footer(answer: dict[str, Any]) -> str:
    """The embedded chat's short account of an answer: its sources and which layers shaped it."""
    lines = []
    if answer.get("sources"):
        names = "; ".join(
            f"[{s['n']}] {s['guide']}" + (f" › {s['section']}" if s["section"] else "") for s in answer["sources"]
        )
        lines.append(f"Sources: {names}")
    if answer.get("attribution"):
        lines.append(f"Shaped by: {describe_layers(answer['attribution'])}")
    lines += [f"⚠ {warning}" for warning in answer.get("warnings") or []]
    return "\n\n" + "\n\n".join(f"<small>{html.escape(line)}</small>" for line in lines) if lines else ""


def request_user(request: gr.Request | None) -> str | None:
    """The user the server's Guard named from a trusted SSO header, if any."""
    return request.headers.get("x-tutor-user") if request is not None else None


def build_ui(tutor: Tutor, ops: Ops, *, embed: bool = False) -> Any:
    """The page: chat with the panel, and the compare view. Launch it with CSS and HEAD.

    `embed` builds the chat alone, for a frame in an intranet page: no header, settings, panel or
    compare view; each answer ends with its sources and layer shares.
    """
    settings = tutor.settings
    presets = [*tutor.presets, NO_PRESET.name]
    front_end = "embed" if embed else "page"
    notice_ok = gr.update(value="", visible=False)

    def notice(message: str) -> Any:
        return gr.update(value=f"⚠️ {message}", visible=True)

    def respond(
        question: str,
        answers: list[dict[str, Any]],
        preset: str,
        retrieval: bool,
        k: int,
        request: gr.Request,
    ) -> Iterator[tuple[Any, ...]]:
        started, user = time.perf_counter(), request_user(request)
        turn = len(answers) + 1
        chat = [*chat_messages(answers, embed=embed), {"role": "user", "content": str(question)}]
        chat.append({"role": "assistant", "content": ""})
        text = ""
        answer = explained = None
        try:
            stream = tutor.stream(
                question, chat_turns(answers), preset=preset, retrieval=retrieval, k=int(k) if k else None, explain=True
            )
            for item in stream:
                if isinstance(item, Answer) and answer is None:  # the answer; its attribution follows
                    answer = item
                    chat[-1]["content"] = linked_answer(unlinked(marked_answer(answer.to_dict())), turn)
                    yield "", chat, panel_html(answer.to_dict(), turn), gr.skip(), notice_ok
                elif isinstance(item, Answer):
                    explained = item.to_dict()
                elif isinstance(item, Queued):
                    chat[-1]["content"] = busy_text(item.ahead)
                    yield "", chat, gr.skip(), gr.skip(), notice_ok
                else:
                    text += item
                    chat[-1]["content"] = linked_answer(unlinked(text), turn)
                    yield "", chat, gr.skip(), gr.skip(), notice_ok
        except TutorError as exc:
            ops.question_done(front_end, started=started, error=exc, user=user, question=question)
            yield gr.skip(), gr.skip(), gr.skip(), gr.skip(), notice(str(exc))
            return
        assert explained is not None
        ops.question_done(front_end, started=started, answer=explained, user=user, question=question)
        answers = [*answers, explained]
        yield "", chat_messages(answers, embed=embed), panel_html(explained, turn), answers, notice_ok

    def show_turn(answers: list[dict[str, Any]], event: gr.SelectData) -> Any:
        turn = event.index // 2 if isinstance(event.index, int) else 0
        return panel_html(answers[turn], turn + 1) if 0 <= turn < len(answers) else gr.skip()

    def rate(answers: list[dict[str, Any]], event: gr.LikeData, request: gr.Request) -> Any:
        turn = event.index // 2 if isinstance(event.index, int) else -1
        if not 0 <= turn < len(answers):
            return gr.skip()
        answer = answers[turn]
        ops.records.feedback(
            {
                "question": answer["question"],
                "answer": answer["answer"],
                "liked": bool(event.liked),
                "preset": answer["preset"],
                "attribution": answer["attribution"],
                "corpus_version": answer["corpus_version"],
            },
            request_user(request),
        )
        return gr.update(value="Thank you: your rating is saved.", visible=True)

    def comment(text: str, answers: list[dict[str, Any]], request: gr.Request) -> tuple[Any, Any]:
        if not text.strip():
            return gr.skip(), gr.update(value="⚠️ Write a comment first.", visible=True)
        last = answers[-1] if answers else {}
        ops.records.feedback(
            {
                "question": last.get("question"),
                "answer": last.get("answer"),
                "liked": None,
                "comment": text.strip()[:2000],
            },
            request_user(request),
        )
        return "", gr.update(value="Thank you: your comment is saved.", visible=True)

    def export(answers: list[dict[str, Any]]) -> Any:
        if not answers:
            return gr.update(value=None)
        paths = ops.records.export(
            {
                "conversation.md": export_markdown(answers),
                "conversation.json": json.dumps(answers, ensure_ascii=False, indent=1),
            }
        )
        return gr.update(value=[str(path) for path in paths], visible=True)

    def compare(question: str, preset: str, k: int, request: gr.Request) -> Iterator[tuple[Any, ...]]:
        started, user = time.perf_counter(), request_user(request)
        labels = [label for label, _, _ in COMPARE_WAYS]
        texts = [""] * len(labels)
        done: list[dict[str, Any] | None] = [None] * len(labels)
        try:
            for way, item in tutor.compare(question, preset=preset if preset != NO_PRESET.name else None, k=int(k)):
                if isinstance(item, Answer):
                    finished = item.to_dict()
                    texts[way], done[way] = unlinked(marked_answer(finished)), finished
                elif isinstance(item, Queued):
                    texts[way] = busy_text(item.ahead)
                else:
                    texts[way] = ("" if texts[way].startswith(BUSY_PREFIX) else texts[way]) + item
                yield (*(compare_html(labels[i], texts[i], done[i]) for i in range(len(labels))), notice_ok)
        except TutorError as exc:
            ops.question_done("compare", started=started, error=exc, user=user, question=question)
            yield (*(gr.skip() for _ in labels), notice(str(exc)))
            return
        if done[-1] is not None:
            ops.question_done("compare", started=started, answer=done[-1], user=user, question=question)

    def show_history(request: gr.Request) -> Any:
        """A signed-in user's earlier questions (kept when an SSO proxy names the user)."""
        history = ops.records.history(request_user(request))[-10:]
        if not history:
            return gr.update(visible=False)
        items = "\n".join(f"- {html.escape(str(item['question']))}" for item in reversed(history))
        return gr.update(value=f"**Your earlier questions**\n\n{items}", visible=True)

    if embed:
        return _embed_page(respond)

    with gr.Blocks(title="Tutor: how AI language models are trained") as page:
        answers = gr.State([])
        gr.Markdown(
            "# Tutor: how AI language models are trained\nAnswers come from the guides. "
            "Beside each answer, see which layer shaped it: the system prompt, the passages, "
            "or the model's own knowledge."
        )
        large = gr.Checkbox(label="Large text (for a projector)", value=False, elem_id="large-text")
        large.change(None, large, None, js=LARGE_TEXT_JS)
        with gr.Tabs():
            with gr.Tab("Chat", id="chat"), gr.Row():
                with gr.Column(scale=3):
                    chatbot = gr.Chatbot(
                        label="Conversation", height=480, elem_id="chat", feedback_options=("Like", "Dislike")
                    )
                    with gr.Row():
                        question = gr.Textbox(
                            label="Your question",
                            placeholder="Ask about how models are trained",
                            scale=5,
                            elem_id="question",
                            autofocus=True,
                        )
                        ask = gr.Button("Ask", variant="primary", scale=1, elem_id="ask")
                    message = gr.Markdown(visible=False, elem_classes=["notice"], elem_id="notice")
                    gr.Examples(EXAMPLES, inputs=question, label="Example questions")
                    with gr.Accordion("Settings", open=True), gr.Row():
                        preset = gr.Dropdown(
                            presets, value=settings.preset, label="System prompt preset", elem_id="preset"
                        )
                        retrieval = gr.Checkbox(value=True, label="Retrieval: use the guides", elem_id="retrieval")
                        k = gr.Slider(1, 8, value=settings.k, step=1, label="Passages (most)", elem_id="k")
                    with gr.Accordion("Feedback and export", open=False):
                        remark = gr.Textbox(label="Comment on the last answer (optional)", elem_id="comment")
                        send_remark = gr.Button("Send comment", elem_id="send-comment")
                        export_button = gr.Button("Export conversation (Markdown and JSON)", elem_id="export")
                        exported = gr.File(
                            label="Exported conversation", file_count="multiple", visible=False, elem_id="exported"
                        )
                    earlier = gr.Markdown(visible=False, elem_id="history")
                with gr.Column(scale=2):
                    panel = gr.HTML(EMPTY_PANEL, elem_id="why")
            with gr.Tab("Compare", id="compare"):
                gr.Markdown(
                    "One question answered four ways, adding one layer at a time: the live RAG demonstration. "
                    f"Each answer stops at {COMPARE_MAX_TOKENS} tokens, about two short sentences."
                )
                with gr.Row():
                    compare_question = gr.Textbox(
                        label="Question", scale=5, elem_id="compare-question", value=EXAMPLES[0]
                    )
                    compare_button = gr.Button("Compare", variant="primary", scale=1, elem_id="compare-run")
                compare_notice = gr.Markdown(visible=False, elem_classes=["notice"])
                with gr.Row():
                    columns = [
                        gr.HTML(compare_html(label, "", None), elem_id=f"compare-{i}")
                        for i, (label, _, _) in enumerate(COMPARE_WAYS)
                    ]

        chat_inputs = [question, answers, preset, retrieval, k]
        chat_outputs = [question, chatbot, panel, answers, message]
        # The model's own line (tutor.gate) orders questions and says "N ahead": no second queue here.
        question.submit(respond, chat_inputs, chat_outputs, concurrency_limit=None)
        ask.click(respond, chat_inputs, chat_outputs, concurrency_limit=None)
        chatbot.select(show_turn, answers, panel)
        chatbot.like(rate, answers, message)
        send_remark.click(comment, [remark, answers], [remark, message])
        export_button.click(export, answers, exported)
        compare_inputs = [compare_question, preset, k]
        compare_button.click(compare, compare_inputs, [*columns, compare_notice], concurrency_limit=None)
        compare_question.submit(compare, compare_inputs, [*columns, compare_notice], concurrency_limit=None)
        page.load(show_history, None, earlier)
    return page


def _embed_page(respond: Any) -> Any:
    """The chat alone, for a frame: the default preset, retrieval on, the default number of passages."""
    with gr.Blocks(title="Tutor", fill_height=True) as page:
        answers = gr.State([])
        preset, retrieval, k = gr.State(None), gr.State(True), gr.State(None)
        chatbot = gr.Chatbot(label="Tutor: how AI language models are trained", elem_id="chat", scale=1)
        with gr.Row():
            question = gr.Textbox(
                label="Your question", placeholder="Ask about how models are trained", scale=5, elem_id="question"
            )
            ask = gr.Button("Ask", variant="primary", scale=1, elem_id="ask")
        message = gr.Markdown(visible=False, elem_classes=["notice"], elem_id="notice")
        panel = gr.HTML(visible=False)
        inputs = [question, answers, preset, retrieval, k]
        outputs = [question, chatbot, panel, answers, message]
        question.submit(respond, inputs, outputs, concurrency_limit=None)
        ask.click(respond, inputs, outputs, concurrency_limit=None)
    return page
