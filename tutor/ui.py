"""The Gradio UI: the chat with its "Why this answer" panel, and the four-way compare view.

The page is built from plain functions of an answer's JSON (`panel_html`, `linked_answer`,
`export_markdown`), so that what it shows is tested without a browser. Gradio is imported at the
top: it reads the event handlers' type hints (gr.SelectData, gr.LikeData) from this module.
"""

from __future__ import annotations

import html
import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import gradio as gr

from .answer import (
    COMPARE_MAX_TOKENS,
    COMPARE_WAYS,
    Answered,
    Explained,
    Token,
    Tutor,
    check_question,
)
from .errors import TutorError
from .explain import LAYER_NAMES, describe_layers
from .gate import Queued
from .ops import Ops
from .prompts import NO_PRESET, PASSAGES_INTRO

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
.why .explains { margin: 0 0 .4em; font-style: italic; }
.why .sentence { border-left: 5px solid #6E6E6E; padding: .2em .6em; margin: .3em 0; list-style: none; }
.why .sentence.guided { border-left-color: #E69F00; }
.why .sentence.prompted { border-left-color: #0072B2; }
.why .tag { font-size: .8em; font-weight: 600; border-radius: 4px; padding: 0 .4em; margin-left: .4em;
  border: 1px solid currentColor; }
.why .passage { border: 1px solid #ccc; border-radius: 6px; padding: .4em .6em; margin: .4em 0; }
.why .passage.related { opacity: .8; border-style: dashed; }
.why .warnings { border: 2px solid #B00020; border-radius: 6px; padding: .4em .6em .4em 1.6em; font-weight: 600; }
.why mark.planted { background: #FDE7E9; color: #B00020; text-decoration: line-through; }
.why .passage.flash { outline: 3px solid #E69F00; }
.why .prompt-part { white-space: pre-wrap; border-left: 5px solid; padding: .2em .6em; margin: .2em 0;
  font-family: ui-monospace, monospace; font-size: .85em; }
.why .part-system { border-color: #0072B2; } .why .part-passages { border-color: #E69F00; }
.why .part-history { border-color: #999; } .why .part-question { border-color: #009E73; }
.why details { margin: .5em 0; } .why summary { cursor: pointer; font-weight: 600; }
.why .figures td, .why .figures th { padding: .1em .5em; text-align: left; vertical-align: top; }
.why .cut { color: #6E6E6E; font-style: italic; }
.notice { color: #B00020; font-weight: 600; }
#chat .explained { outline: 3px solid #E69F00; outline-offset: 2px; }
.embed-sources summary { cursor: pointer; }
.embed-sources details { margin: .2em 0 .2em 1em; }
footer { display: none !important; }
"""

# Rules that depend on a class the page's script sets on <html>, and the narrow-screen layouts: in
# HEAD, as written (Gradio prefixes the rules of `css` with its container, which no <html> rule
# survives, and the prefixed rules would outweigh these).
PAGE_CSS = """
.why-back, .why-open { display: none; }
#compare-row[data-shown="1"] > :nth-child(n+2), #compare-row[data-shown="2"] > :nth-child(n+3),
#compare-row[data-shown="3"] > :nth-child(n+4) { visibility: hidden; }
html.tutor-presenter .gradio-container { max-width: none !important; width: 100% !important;
  padding: 0 1em !important; }
html.tutor-presenter .gradio-container, html.tutor-presenter .gradio-container * { font-size: 24px !important;
  line-height: 1.35 !important; }
html.tutor-presenter .gradio-container h1, html.tutor-presenter .gradio-container h1 * { font-size: 40px !important; }
html.tutor-presenter .gradio-container h3 { font-size: 30px !important; }
html.tutor-presenter .layer-bar { height: 1.8em; }
@media (max-width: 700px) {
  #why-column { position: fixed; inset: 0; z-index: 1000; margin: 0; padding: .8em; overflow-y: auto;
    background: var(--background-fill-primary, #fff); transform: translateX(105%); transition: transform .2s; }
  html.tutor-drawer #why-column { transform: none; }
  html.tutor-drawer body { overflow: hidden; }
  .why-back { display: inline-block; position: sticky; top: 0; z-index: 1; font-size: 1.05em; padding: .5em .9em;
    border-radius: 6px; border: 1px solid #999; background: var(--background-fill-primary, #fff); }
  .why-open { display: inline-block; font-size: 1em; padding: .4em .8em; border-radius: 6px; border: 1px solid #999; }
  #compare-row { flex-direction: column !important; }
  #compare-row > * { min-width: 100% !important; }
}
@media (max-width: 480px) {
  #ask-row { flex-direction: column !important; }
  #ask-row > * { min-width: 100% !important; width: 100% !important; }
}
"""

# Citations link to their passage in the panel: one click shows the passage, highlighted, even when
# the panel first has to switch to that answer (the chat's select event does that on the server),
# and on a narrow screen the panel opens as a drawer with a way back. Copying an answer gives plain
# text: [1] instead of the citation's Markdown link.
HEAD = (
    "<style>"
    + PAGE_CSS
    + """</style>
<script>
(() => {
  let pending = null;
  const highlight = (id) => {
    const target = document.getElementById(id);
    if (!target) return false;
    for (let d = target.closest('details'); d; d = d.parentElement && d.parentElement.closest('details')) d.open = true;
    if (target.closest('#why-column') && window.matchMedia('(max-width: 700px)').matches) {
      document.documentElement.classList.add('tutor-drawer');
    }
    target.scrollIntoView({behavior: 'smooth', block: 'center'});
    target.classList.add('flash');
    setTimeout(() => target.classList.remove('flash'), 2500);
    return true;
  };
  document.addEventListener('click', (event) => {
    if (event.target.closest('.why-back')) {
      document.documentElement.classList.remove('tutor-drawer');
      const marked = document.querySelector('#chat .explained');
      if (marked) marked.scrollIntoView({block: 'center'});
      return;
    }
    if (event.target.closest('.why-open')) { document.documentElement.classList.add('tutor-drawer'); return; }
    const link = event.target.closest('a[href^="#passage-"]');
    if (!link) return;
    event.preventDefault();
    const id = link.getAttribute('href').slice(1);
    if (highlight(id)) return;
    pending = {id, until: Date.now() + 15000};  // the panel is switching to that answer
  }, true);
  const plain = (text) => text.replace(/\\[\\[(\\d+)\\]\\]\\(#passage-[\\w-]+\\)/g, '[$1]')
    .replace(/\\*\\((⚠ not in the guides)\\)\\*/g, '($1)');
  if (navigator.clipboard && navigator.clipboard.writeText) {
    const write = navigator.clipboard.writeText.bind(navigator.clipboard);
    navigator.clipboard.writeText = (text) => write(plain(String(text)));
  }
  document.addEventListener('copy', (event) => {
    const selection = document.getSelection();
    if (!selection || selection.isCollapsed || !selection.anchorNode) return;
    const anchor = selection.anchorNode;
    const node = anchor.nodeType === 1 ? anchor : anchor.parentElement;
    if (!node || !node.closest('#chat')) return;
    event.clipboardData.setData('text/plain', plain(selection.toString()));
    event.preventDefault();
  });
  // On a narrow screen, a sent question brings the chat to the top: the answer, box and Ask in view.
  const toChat = () => {
    if (!window.matchMedia('(max-width: 700px)').matches) return;
    setTimeout(() => {
      const chat = document.getElementById('chat');
      if (chat) chat.scrollIntoView({block: 'start'});
    }, 150);
  };
  document.addEventListener('click', (event) => { if (event.target.closest('#ask')) toChat(); });
  document.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && !event.shiftKey && event.target.closest && event.target.closest('#question')) toChat();
  });
  const sync = () => {
    if (pending) {
      if (Date.now() > pending.until) pending = null;
      else if (highlight(pending.id)) pending = null;
    }
    const shown = document.querySelector('#why .why[data-turn]');
    const turn = shown ? Number(shown.dataset.turn) : 0;
    const bots = document.querySelectorAll('#chat .message.bot');
    bots.forEach((bot, i) => bot.classList.toggle('explained', i + 1 === turn));
  };
  new MutationObserver(() => { clearTimeout(window.tutorSync); window.tutorSync = setTimeout(sync, 50); })
    .observe(document.documentElement, {childList: true, subtree: true});
})();
</script>
"""
)

PRESENTER_JS = "(on) => { document.documentElement.classList.toggle('tutor-presenter', on); return on; }"
# The compare view's step control, in the browser alone: the four answers stream as before, and the
# columns not yet revealed are kept in place but hidden.
NEXT_LAYER_JS = """() => {
  const row = document.getElementById('compare-row');
  const shown = Math.min(Number(row.dataset.shown || 0) + 1, 4);
  row.dataset.shown = String(shown);
  return [];
}"""
RESET_JS = """() => { document.getElementById('compare-row').dataset.shown = '0'; return []; }"""

BACK_BUTTON = '<button type="button" class="why-back">‹ Back to the answer</button>'
EMPTY_PANEL = (
    f'<div class="why">{BACK_BUTTON}<h3>Why this answer</h3>'
    "<p>Ask a question: this panel then shows which layer shaped the answer (the system prompt, the passages "
    "from the guides, or the model's own knowledge), the passages, "
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
    # The guides' sentence quoted under the answer is theirs: the verdict is on the model's sentences.
    sentences = [s for s in answer.get("sentences") or [] if not s.get("quoted")]
    unbacked = [s for s in sentences if not s.get("supported_by")]
    if sentences and 2 * len(unbacked) >= len(sentences):
        quoted = len(sentences) < len(answer.get("sentences") or [])
        return (
            "Not from the guides: no passage supports "
            + ("this answer" if len(unbacked) == len(sentences) else "most of this answer")
            + ". Read it as the model's own knowledge, whatever its layer shares."
            + (" The quote under it is the guides' own sentence." if quoted else "")
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


def _sentence_item(sentence: dict[str, Any], turn: int | str) -> str:
    """A sentence and where it came from, in words; its figures are in the panel's details."""
    layers = sentence.get("layers")
    cited = sentence.get("supported_by") or []
    if cited:
        kind, tag = "guided", "from " + ", ".join(f'<a href="#passage-{turn}-{n}">passage {n}</a>' for n in cited)
    elif layers and float(layers["prompt"]) > max(float(layers["retrieval"]), float(layers["model"])):
        kind, tag = "prompted", "from the system prompt"
    else:
        kind, tag = "own", "model's own knowledge: no passage supports it"
    return f'<li class="sentence {kind}">{html.escape(sentence["text"])}<span class="tag">{tag}</span></li>'


def _figures(answer: dict[str, Any], min_score: float) -> str:
    """The measurements behind the plain words: support, layer shares, similarity, the method."""
    rows = []
    for i, sentence in enumerate(answer.get("sentences") or [], start=1):
        support = sentence.get("support")
        figures = [f"support {float(support):.2f}"] if support is not None and sentence.get("supported_by") else []
        if sentence.get("layers"):
            figures.append(describe_layers(sentence["layers"]))
        rows.append(f"<tr><th>Sentence {i}</th><td>{html.escape(' · '.join(figures) or '–')}</td></tr>")
    for source in answer.get("sources") or []:
        score = float(source["score"])
        kind = "source" if score >= min_score else f"related (under the {min_score:.2f} threshold)"
        rows.append(f"<tr><th>Passage {source['n']}</th><td>similarity {score:.2f}: {kind}</td></tr>")
    shares = answer.get("attribution") or {}
    if shares.get("method"):
        rows.append(f"<tr><th>Method</th><td>{html.escape(str(shares['method']))}</td></tr>")
    if not rows:
        return ""
    return f'<details class="figures"><summary>Details: the figures</summary><table>{"".join(rows)}</table></details>'


def _passage_html(source: dict[str, Any], turn: int | str, related: bool = False) -> str:
    where = html.escape(source["guide"]) + (" › " + html.escape(source["section"]) if source.get("section") else "")
    return (
        f'<div class="passage{" related" if related else ""}" id="passage-{turn}-{source["n"]}">'
        f"<strong>[{source['n']}] {where}</strong> · <small>{html.escape(source['path'])}</small><br>"
        f"{_passage_text(source)}</div>"
    )


def _passages_html(sources: list[dict[str, Any]], turn: int | str, min_score: float, *, open_: bool = True) -> str:
    """The sources (similar enough to the question to count), then the passages only related to it."""
    found = [s for s in sources if float(s["score"]) >= min_score]
    related = [s for s in sources if float(s["score"]) < min_score]
    out = (
        f'<details{" open" if open_ else ""} class="passages"><summary>Sources from the guides ({len(found)})</summary>'
        + ("".join(_passage_html(s, turn) for s in found) or "<p>No passage was close enough to count as a source.</p>")
        + "</details>"
    )
    if related:
        out += (
            f'<details class="related"><summary>Related passages, less close to the question ({len(related)})'
            "</summary>" + "".join(_passage_html(s, turn, related=True) for s in related) + "</details>"
        )
    return out


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


DEFAULT_MIN_SCORE = 0.20  # settings.min_score's default, for callers without the settings


def panel_html(answer: dict[str, Any], turn: int, min_score: float = DEFAULT_MIN_SCORE) -> str:
    """The "Why this answer" panel of one answer (the JSON of `Answer.to_dict`): plain words first,
    the figures, the prompt and the steps behind toggles."""
    sources = answer.get("sources") or []
    sentences = "".join(_sentence_item(s, turn) for s in answer.get("sentences") or [])
    bar = layer_bar(answer.get("attribution"))
    if answer.get("attribution_error"):
        bar = f'<p class="notice" role="status">Attribution unavailable: {html.escape(answer["attribution_error"])}</p>'
    warnings = "".join(f"<li>{html.escape(w)}</li>" for w in answer.get("warnings") or [])
    if warnings:
        warnings = f'<ul class="warnings" role="alert">{warnings}</ul>'
    prompt = answer.get("prompt") or []
    system = prompt[0]["content"] if prompt else ""
    missing = "(not kept in your history)" if answer.get("restored") else "(none: the model was not asked)"
    prompt_parts = _prompt_parts(prompt) if prompt else f"<p>{missing}</p>"
    return (
        f'<div class="why" data-turn="{turn}">{BACK_BUTTON}<h3>Why this answer</h3>'
        f'<p class="explains">Answer {turn}: “{html.escape(str(answer.get("question", "")))}”</p>'
        f"{warnings}"
        f'<p class="verdict">{verdict(answer)}</p>{bar}'
        f'<h4>Sentence by sentence</h4><ol class="sentences">{sentences}</ol>'
        f"{_passages_html(sources, turn, min_score)}"
        f"{_figures(answer, min_score)}"
        f'<details class="system"><summary>System prompt in force: {html.escape(str(answer.get("preset")))}</summary>'
        f'<div class="prompt-part part-system">{html.escape(system) or missing}</div>'
        "</details>"
        f'<details class="full-prompt"><summary>Full prompt sent</summary>{prompt_parts}</details>'
        f'<details class="steps"><summary>Step by step</summary>{_steps(answer)}</details></div>'
    )


_SENTENCE_END = re.compile(r"[.!?…:;][\"')\]”’*_`]*$")
_TRAILING_CITATIONS = re.compile(r"(\s*\[\d+\])+\s*$")


def ends_a_sentence(text: str) -> bool:
    """The text ends at a sentence end (citations after the full stop allowed)."""
    return bool(_SENTENCE_END.search(_TRAILING_CITATIONS.sub("", text.rstrip())))


def compare_html(
    label: str,
    text: str,
    answer: dict[str, Any] | None,
    way: int = 0,
    *,
    cut: bool = False,
    min_score: float = DEFAULT_MIN_SCORE,
) -> str:
    """One column of the compare view; a finished answer gets a drawer with its prompt by layer and
    its passages, and an answer stopped at the token cap says so."""
    body = _render_markdown(text) if text else "<em>waiting…</em>"
    footer = ""
    if answer is not None:
        if cut:
            body += f'<p class="cut">… cut at {COMPARE_MAX_TOKENS} tokens</p>'
        footer = layer_bar(answer.get("attribution")) + f"<p><small>{verdict(answer)}</small></p>"
        sources = answer.get("sources") or []
        passages = _passages_html(sources, f"c{way}", min_score) if sources else "<p>No passages: retrieval off.</p>"
        footer += (
            f'<details class="drawer"><summary>Prompt and passages</summary>'
            f"<h4>Prompt by layer</h4>{_prompt_parts(answer.get('prompt') or [])}<h4>Passages</h4>{passages}</details>"
        )
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


def request_user(request: gr.Request | None) -> str | None:
    """The user the server's Guard named from a trusted SSO header, if any."""
    return request.headers.get("x-tutor-user") if request is not None else None


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


def last_conversation(history: list[dict[str, Any]]) -> tuple[str | None, list[dict[str, Any]]]:
    """The latest conversation in a user's history (its id and answers, oldest first)."""
    if not history or not history[-1].get("conversation"):
        return None, []
    conversation = history[-1]["conversation"]
    turns = []
    for item in reversed(history):
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


def build_ui(tutor: Tutor, ops: Ops, *, embed: bool = False) -> Any:
    """The page: chat with the panel, and the compare view. Launch it with CSS and HEAD.

    `embed` builds the chat alone, for a frame in an intranet page: no header, settings, panel or
    compare view; each answer ends with its sources (folded) and layer shares.
    """
    settings = tutor.settings
    min_score = float(settings.min_score)
    presets = [*tutor.presets, NO_PRESET.name]
    front_end = "embed" if embed else "page"
    notice_ok = gr.update(value="", visible=False)
    ask_idle, ask_busy = gr.update(value="Ask"), gr.update(value="Add to queue")

    def notice(message: str) -> Any:
        return gr.update(value=f"⚠️ {message}", visible=True)

    def view(answers: list[dict[str, Any]], line: Line) -> list[dict[str, str]]:
        with line.lock:
            current, waiting = line.current, line.questions()
        return chat_messages(answers, embed=embed, current=current, waiting=waiting, min_score=min_score)

    def send(
        question: str, line: Line, answers: list[dict[str, Any]], preset: str, retrieval: bool, k: int
    ) -> tuple[Any, ...]:
        """Queue the question (answered at once when nothing else is); a question that cannot be
        asked stays in the box with the reason beside it."""
        try:
            check_question(question, settings.max_question_chars)
        except TutorError as exc:
            return gr.skip(), gr.skip(), notice(str(exc)), gr.skip()
        with line.lock:
            line.waiting.append((str(question), preset, bool(retrieval), int(k) if k else 0))
        return "", view(answers, line), notice_ok, ask_busy

    def drain(line: Line, answers: list[dict[str, Any]], request: gr.Request) -> Iterator[tuple[Any, ...]]:
        """Answer the session's waiting questions one after another; a second drain of the same
        session leaves them to the one already running."""
        user = request_user(request)
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
                yield from answer_one(question, preset, retrieval, k, line, answers, user)  # appends to answers
        finally:
            with line.lock:
                line.running, line.current = False, None
        with line.lock:  # another drain may have started meanwhile: the label follows the line
            label = ask_busy if line.running or line.waiting else ask_idle
        yield view(answers, line), gr.skip(), gr.skip(), gr.skip(), label

    def answer_one(
        question: str,
        preset: str,
        retrieval: bool,
        k: int,
        line: Line,
        answers: list[dict[str, Any]],
        user: str | None,
    ) -> Iterator[tuple[Any, ...]]:
        started, turn = time.perf_counter(), len(answers) + 1
        text, explained = "", None

        def show(current_text: str) -> list[dict[str, str]]:
            with line.lock:
                line.current = (question, current_text)
            return view(answers, line)

        try:
            stream = tutor.stream(
                question, chat_turns(answers), preset=preset, retrieval=retrieval, k=k or None, explain=True
            )
            for event in stream:
                match event:
                    case Answered(answer=answer):  # its attribution follows
                        shown = answer.to_dict()
                        panel = panel_html(shown, turn, min_score)
                        yield show(marked_answer(shown)), panel, gr.skip(), gr.skip(), ask_busy
                    case Explained(answer=answer):
                        explained = answer.to_dict()
                    case Queued(ahead=ahead):
                        yield show(busy_text(ahead)), gr.skip(), gr.skip(), gr.skip(), ask_busy
                    case Token(text=piece):
                        text += piece
                        yield show(text), gr.skip(), gr.skip(), gr.skip(), ask_busy
        except TutorError as exc:
            ops.question_done(front_end, started=started, error=exc, user=user, question=question)
            with line.lock:
                line.current = None
            yield view(answers, line), gr.skip(), gr.skip(), notice(f"“{question[:80]}”: {exc}"), ask_busy
            return
        assert explained is not None
        ops.question_done(
            front_end,
            started=started,
            answer={**explained, "conversation": line.conversation},
            user=user,
            question=question,
        )
        answers.append(explained)
        with line.lock:
            line.current = None
        yield view(answers, line), panel_html(explained, turn, min_score), list(answers), gr.skip(), ask_busy

    def show_turn(answers: list[dict[str, Any]], event: gr.SelectData) -> Any:
        turn = event.index // 2 if isinstance(event.index, int) else 0
        return panel_html(answers[turn], turn + 1, min_score) if 0 <= turn < len(answers) else gr.skip()

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
                "preset": answer.get("preset"),
                "attribution": answer.get("attribution"),
                "corpus_version": answer.get("corpus_version"),
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

    def is_cut(text: str) -> bool:
        """Stopped by the token cap rather than by the model: no sentence end, and about the cap long."""
        if ends_a_sentence(text):
            return False
        try:
            return tutor.chat.count_tokens(text) >= COMPARE_MAX_TOKENS * 0.8
        except Exception:  # noqa: BLE001 (a remote engine may not count; the missing full stop says enough)
            return True

    def compare(question: str, preset: str, k: int, request: gr.Request) -> Iterator[tuple[Any, ...]]:
        started, user = time.perf_counter(), request_user(request)
        labels = [label for label, _, _ in COMPARE_WAYS]
        texts = [""] * len(labels)
        done: list[dict[str, Any] | None] = [None] * len(labels)
        cut = [False] * len(labels)

        def columns() -> tuple[str, ...]:
            return tuple(
                compare_html(labels[i], texts[i], done[i], i, cut=cut[i], min_score=min_score)
                for i in range(len(labels))
            )

        try:
            for way, event in tutor.compare(question, preset=preset if preset != NO_PRESET.name else None, k=int(k)):
                match event:
                    case Answered(answer=answer) | Explained(answer=answer):
                        finished = answer.to_dict()
                        texts[way], done[way] = unlinked(marked_answer(finished)), finished
                        cut[way] = is_cut(str(finished["answer"]))
                    case Queued(ahead=ahead):
                        texts[way] = busy_text(ahead)
                    case Token(text=piece):
                        texts[way] = ("" if texts[way].startswith(BUSY_PREFIX) else texts[way]) + piece
                yield (*columns(), notice_ok)
        except TutorError as exc:
            ops.question_done("compare", started=started, error=exc, user=user, question=question)
            yield (*(gr.skip() for _ in labels), notice(str(exc)))
            return
        if done[-1] is not None:
            ops.question_done("compare", started=started, answer=done[-1], user=user, question=question)

    def reset_compare() -> tuple[Any, ...]:
        return (*(compare_html(label, "", None, i) for i, (label, _, _) in enumerate(COMPARE_WAYS)), notice_ok)

    def restore(line: Line, request: gr.Request) -> tuple[Any, ...]:
        """A signed-in user's earlier questions, and their last conversation back in the chat."""
        history = ops.records.history(request_user(request))
        if not history:
            return gr.skip(), gr.skip(), gr.skip(), gr.update(visible=False)
        conversation, answers = last_conversation(history)
        samples = gr.update(samples=recent_questions(history), visible=not embed)  # no room in a frame
        if not answers or conversation is None:
            return gr.skip(), gr.skip(), gr.skip(), samples
        line.conversation = conversation
        turn = len(answers)
        return answers, view(answers, line), panel_html(answers[-1], turn, min_score), samples

    def new_conversation(line: Line) -> tuple[Any, ...]:
        """The chat's clear button: the server forgets the conversation too (a new one starts)."""
        with line.lock:
            line.waiting.clear()
            line.conversation = uuid.uuid4().hex
        return [], EMPTY_PANEL

    def pick_earlier(sample: Any) -> Any:
        return str(sample[0]) if isinstance(sample, list) and sample else gr.skip()

    if embed:
        return _embed_page(send, drain, rate, restore, new_conversation)

    with gr.Blocks(title="Tutor: how AI language models are trained") as page:
        answers = gr.State([])
        line = gr.State(Line)
        sign_out = " · [Sign out](logout)" if settings.auth_token else ""
        gr.Markdown(
            "# Tutor: how AI language models are trained\nAnswers come from the guides. "
            "Beside each answer, see which layer shaped it: the system prompt, the passages, "
            f"or the model's own knowledge. [API](docs){sign_out}",
            elem_id="header",
        )
        presenter = gr.Checkbox(label="Presenter mode (large text, full width)", value=False, elem_id="presenter")
        presenter.change(None, presenter, None, js=PRESENTER_JS)
        with gr.Tabs():
            with gr.Tab("Chat", id="chat"), gr.Row():
                with gr.Column(scale=3):
                    chatbot = gr.Chatbot(
                        label="Conversation", height="55vh", elem_id="chat", feedback_options=("Like", "Dislike")
                    )
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
                with gr.Column(scale=2, elem_id="why-column"):
                    panel = gr.HTML(EMPTY_PANEL, elem_id="why")
            with gr.Tab("Compare", id="compare"):
                gr.Markdown(
                    "One question answered four ways, adding one layer at a time: the live RAG demonstration. "
                    f"Each answer stops at {COMPARE_MAX_TOKENS} tokens, about two short sentences. "
                    "“Next layer” shows one column at a time."
                )
                with gr.Row(elem_id="compare-ask-row"):
                    compare_question = gr.Textbox(
                        label="Question", scale=5, elem_id="compare-question", value=EXAMPLES[0]
                    )
                    compare_button = gr.Button("Compare", variant="primary", scale=1, elem_id="compare-run")
                with gr.Row():
                    next_layer = gr.Button("Next layer", elem_id="compare-next", size="sm")
                    reset = gr.Button("Reset", elem_id="compare-reset", size="sm")
                compare_notice = gr.Markdown(visible=False, elem_classes=["notice"])
                with gr.Row(elem_id="compare-row", equal_height=False):
                    columns = [
                        gr.HTML(compare_html(label, "", None, i), elem_id=f"compare-{i}", elem_classes=["compare-col"])
                        for i, (label, _, _) in enumerate(COMPARE_WAYS)
                    ]

        send_inputs = [question, line, answers, preset, retrieval, k]
        send_outputs = [question, chatbot, question_error, ask]
        drain_outputs = [chatbot, panel, answers, message, ask]
        for trigger in (question.submit, ask.click):
            # Each send is queued at once ("multiple": a send during an answer is never dropped);
            # the session's one drain answers them in order. The model's own line (tutor.gate)
            # orders all sessions and says "N ahead".
            trigger(send, send_inputs, send_outputs, trigger_mode="multiple", show_progress="hidden").then(
                drain, [line, answers], drain_outputs, concurrency_limit=None, show_progress="hidden"
            )
        question.input(lambda: notice_ok, None, question_error, queue=False, show_progress="hidden")
        chatbot.select(show_turn, answers, panel)
        chatbot.clear(new_conversation, line, [answers, panel])
        chatbot.like(rate, answers, message)
        send_remark.click(comment, [remark, answers], [remark, message])
        export_button.click(export, answers, exported)
        earlier.click(pick_earlier, earlier, question)
        compare_inputs = [compare_question, preset, k]
        compare_button.click(compare, compare_inputs, [*columns, compare_notice], concurrency_limit=None)
        compare_question.submit(compare, compare_inputs, [*columns, compare_notice], concurrency_limit=None)
        next_layer.click(None, None, None, js=NEXT_LAYER_JS)
        reset.click(reset_compare, None, [*columns, compare_notice], js=RESET_JS)
        page.load(restore, line, [answers, chatbot, panel, earlier])
    return page


def _embed_page(send: Any, drain: Any, rate: Any, restore: Any, new_conversation: Any) -> Any:
    """The chat alone, for a frame: the default preset, retrieval on, the default number of passages."""
    with gr.Blocks(title="Tutor", fill_height=True) as page:
        answers = gr.State([])
        line = gr.State(Line)
        preset, retrieval, k = gr.State(None), gr.State(True), gr.State(None)
        chatbot = gr.Chatbot(
            label="Tutor: how AI language models are trained",
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
        panel = gr.HTML(visible=False)
        earlier = gr.Dataset(components=[question], samples=[], visible=False)
        send_inputs = [question, line, answers, preset, retrieval, k]
        send_outputs = [question, chatbot, question_error, ask]
        for trigger in (question.submit, ask.click):
            trigger(send, send_inputs, send_outputs, trigger_mode="multiple", show_progress="hidden").then(
                drain,
                [line, answers],
                [chatbot, panel, answers, message, ask],
                concurrency_limit=None,
                show_progress="hidden",
            )
        question.input(
            lambda: gr.update(value="", visible=False), None, question_error, queue=False, show_progress="hidden"
        )
        chatbot.like(rate, answers, message)
        chatbot.clear(new_conversation, line, [answers, panel])
        page.load(restore, line, [answers, chatbot, panel, earlier])
    return page
