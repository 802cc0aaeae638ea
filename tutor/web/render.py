"""The page's HTML of one answer, from its JSON (tutor.contract): the "Why this answer" panel, the
verdict in plain words, the layer bar, and a column of the compare view.

Pure functions of the answer's dict, so that what the page shows is tested without a browser.
"""

from __future__ import annotations

import html
import re
from typing import Any

from ..answer import ACT_REPLY, COMPARE_MAX_TOKENS
from ..explain import LAYER_NAMES, describe_layers
from ..injection import INSTRUCTIONS_REPLY
from ..markers import TRAILING_CITATIONS
from ..prompts import NO_PRESET, PASSAGES_INTRO

SHORT_NAMES = {"prompt": "prompt", "retrieval": "passages", "model": "model"}
LAYER_COLOURS = {
    "prompt": "#0072B2",
    "retrieval": "#E69F00",
    "model": "#6E6E6E",
}  # Okabe-Ito, safe for colour blindness

BACK_BUTTON = '<button type="button" class="why-back">‹ Back to the answer</button>'
EMPTY_PANEL = (
    f'<div class="why">{BACK_BUTTON}<h3>Why this answer</h3>'
    "<p>Ask a question: this panel then shows which layer shaped the answer (the system prompt, the passages "
    "from the guides, or the model's own knowledge), the passages, "
    "and the prompt that was sent.</p></div>"
)


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
        if answer.get("answer") == ACT_REPLY:
            return "A request to act outside the chat: the tutor only answers here, so the model was not asked."
        if answer.get("answer") == INSTRUCTIONS_REPLY:
            return "The question tried to change the tutor's instructions or get its set-up: the model was not asked."
        return "The guides do not cover this question, so the tutor did not let the model invent an answer."
    if not answer.get("retrieval"):
        if answer.get("preset") == NO_PRESET.name:
            return "The model alone: no passages and only a neutral system prompt."
        return "Retrieval was off: this answer is the model's own knowledge, under the system prompt."
    # The guides' sentences quoted under the answer are theirs: the verdict is on the model's sentences.
    sentences = [s for s in answer.get("sentences") or [] if not s.get("quoted")]
    unbacked = [s for s in sentences if not s.get("supported_by")]
    if sentences and 2 * len(unbacked) >= len(sentences):
        quoted = len(answer.get("sentences") or []) - len(sentences)
        return (
            "Not from the guides: no passage supports "
            + ("this answer" if len(unbacked) == len(sentences) else "most of this answer")
            + ". Read it as the model's own knowledge, whatever its layer shares."
            + {0: "", 1: " The quote under it is the guides' own sentence."}.get(
                quoted, " The quotes under it are the guides' own sentences."
            )
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


def _respelled(question: str, query: str) -> bool:
    """Whether the query is the question with words corrected: as many words, none much longer."""
    typed, read = question.split(), query.split()
    return len(typed) == len(read) and all(abs(len(a) - len(b)) <= 2 for a, b in zip(typed, read, strict=True))


def _steps(answer: dict[str, Any]) -> str:
    timings = answer.get("timings") or {}
    sources = answer.get("sources") or []
    query, question = str(answer.get("query")), str(answer.get("question"))
    if query == question:
        how = "the question as asked"
    elif _respelled(question, query):  # tutor.spelling
        how = "the question with its typing slips corrected towards the guides' words"
    elif len(query) > len(question):  # tutor.retrieve.standalone_query
        how = "the follow-up joined to the previous question and the first sentence of its answer (a question "
        how += "before that one too, where it leans back itself), and the follow-up as asked"
    else:  # tutor.retrieve.without_subject_change
        how = "the question without its opening (“unrelated, but”, “new question:”), which names no topic"
    steps = [f"<b>Search query.</b> {html.escape(query)} ({how})"]
    if not answer.get("retrieval"):
        steps.append("<b>Passages.</b> Retrieval was off: no passage was looked up.")
    elif sources:
        found = ", ".join(f"[{s['n']}] {float(s['score']):.2f}" for s in sources)
        steps.append(
            f"<b>Passages.</b> {len(sources)} passage(s) from the guides were similar enough to the question "
            f"(similarity {found}) and went into the prompt, in {timings.get('retrieve_s', 0):.2f} s."
        )
    else:
        steps.append(
            "<b>Passages.</b> No passage was similar enough, or the model judged that the best of them are not "
            "about what the question asks: the question is outside the guides."
        )
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


def ends_a_sentence(text: str) -> bool:
    """The text ends at a sentence end (citations after the full stop allowed)."""
    return bool(_SENTENCE_END.search(TRAILING_CITATIONS.sub("", text.rstrip())))


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
