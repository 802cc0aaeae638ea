"""Which passage backs which answer sentence, and the citations that follow from it.

The model is not trusted to number its citations: a 0.5B model cites the wrong passage often. Its
own markers are removed and each finished sentence gets the passages that measurably support it:
the mean of embedding similarity and of the share of the sentence's content words (those it does
not merely repeat from the question) found in the passage. A sentence no passage supports gets no
citation: it is the model's own knowledge.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .index import text_to_embed
from .lexical import lexical_tokens
from .llm import TokenLogprobs
from .markers import CITATION_MARKERS, LIST_ITEM, OPEN_CITATION, SENTENCE_END, split_sentences, without_list_number
from .retrieve import Passage

SUPPORT_THRESHOLD = 0.45  # below this a passage does not back a sentence
SUPPORT_NEAR_BEST = 0.10  # a second passage is cited only if nearly as supportive as the best
MAX_CITATIONS = 2


@dataclass(frozen=True)
class SentenceSupport:
    """One answer sentence and the passages (numbered from 1) that support it."""

    text: str
    supported_by: tuple[int, ...]
    support: float
    layers: LayerShares | None = field(default=None, compare=False)
    replaced: str | None = None  # the model's own sentence, when the guides' replaced it (a figure, a yes or no)
    quoted: bool = False  # the guides' sentence quoted under the answer, not the model's


class SupportScorer:
    """Scores sentences against the passages of one answer."""

    def __init__(self, passages: Sequence[Passage], embed: Callable[[str], list[float]], question: str = "") -> None:
        self.passages = list(passages)
        # Words the sentence only repeats from the question are no evidence that a passage backs it.
        self._question_words = set(lexical_tokens(question))
        self._embed = embed
        self._vectors: np.ndarray | None = None
        self._words = [set(lexical_tokens(p.text)) for p in self.passages]

    def _passage_vectors(self) -> np.ndarray:
        """The passages' vectors; a widened passage's is made here, when the first sentence is
        scored, not before the model's first token."""
        if self._vectors is None:
            self._vectors = np.asarray(
                [p.embedding or self._embed(text_to_embed(p.guide, p.section, p.text)) for p in self.passages],
                dtype=np.float32,
            )
        return self._vectors

    def score(self, sentence: str) -> SentenceSupport:
        words = set(lexical_tokens(sentence)) - self._question_words
        if not self.passages or not words:
            return SentenceSupport(sentence, (), 0.0)
        similarity = self._passage_vectors() @ np.asarray(self._embed(sentence), dtype=np.float32)
        overlap = np.asarray([len(words & pw) / len(words) for pw in self._words])
        support = 0.5 * np.clip(similarity, 0.0, 1.0) + 0.5 * overlap
        best = float(support.max())
        order = [int(i) for i in np.argsort(-support)]
        cited = tuple(
            i + 1
            for i in order[:MAX_CITATIONS]
            if support[i] >= SUPPORT_THRESHOLD and support[i] >= best - SUPPORT_NEAR_BEST
        )
        return SentenceSupport(sentence, cited, round(best, 3))


class CitingStream:
    """Passes the model's text through, dropping its own markers and adding checked ones.

    A sentence's citations are written right after its closing punctuation, as soon as the
    sentence is complete, so the answer still streams token by token.
    """

    def __init__(self, scorer: SupportScorer | None) -> None:
        self.scorer = scorer
        self.sentences: list[SentenceSupport] = []
        self._held = ""  # raw text not yet passed on
        self._sentence = ""  # text of the open sentence, already passed on
        self.text = ""  # everything passed on so far

    def feed(self, piece: str) -> str:
        """Take a piece of model output; return what can be shown now."""
        self._held += piece
        return self._emit(self._drain(final=False))

    def finish(self) -> str:
        """Flush the rest at the end of the answer."""
        return self._emit(self._drain(final=True) + self._close_sentence())

    def _emit(self, shown: str) -> str:
        self.text += shown
        return shown

    def _drain(self, final: bool) -> str:
        held = CITATION_MARKERS.sub("", self._held)
        keep = ""
        if not final:
            open_marker = OPEN_CITATION.search(held)
            if open_marker:
                held, keep = held[: open_marker.start()], held[open_marker.start() :]
            # Wait for what follows a closing . ! ? or trailing spaces: it decides if a sentence ended.
            tail = re.search(r"[.!?\s]+$", held)
            if tail:
                held, keep = held[: tail.start()], held[tail.start() :] + keep
        self._held = keep
        # The last character already shown is context: a "." that starts this piece may end a
        # sentence whose last letter came in the previous piece.
        context = self._sentence[-1:]
        out, position = [], 0
        for match in SENTENCE_END.finditer(context + held):
            start, end = max(match.start() - len(context), 0), match.end() - len(context)
            if end <= start:
                continue
            self._sentence += held[position:start]
            out.append(held[position:start])
            out.append(self._close_sentence() + held[start:end])
            position = end
        self._sentence += held[position:]
        out.append(held[position:])
        return "".join(out)

    def _close_sentence(self) -> str:
        sentence, self._sentence = self._sentence.strip(), ""
        if not sentence:
            return ""
        if self.scorer is None:
            self.sentences.append(SentenceSupport(sentence, (), 0.0))
            return ""
        result = self.scorer.score(sentence)
        self.sentences.append(result)
        return "".join(f"[{n}]" for n in result.supported_by)


Evidence = tuple[int, str, float]  # a passage's sentence ranked for a question: its passage's number, it, its score


def evidence_sentence(
    passages: Sequence[Passage], question: str, embed: Callable[[list[str]], list[list[float]]]
) -> Evidence | None:
    """The passages' sentence that best answers the question, with its passage's number and its
    score (`ranked_evidence`'s first)."""
    ranked = ranked_evidence(passages, question, embed)
    return ranked[0] if ranked else None


def ranked_evidence(
    passages: Sequence[Passage],
    question: str,
    embed: Callable[[list[str]], list[list[float]]],
    *,
    with_questions: bool = False,
) -> list[Evidence]:
    """The passages' sentences, best answer to the question first, each with its passage's number
    and its score: the mean of its embedding similarity to the question and the share of the
    question's words it holds (as citations are scored). Sentences planted in a guide are left out.
    Each sentence is read after its section's heading, for both scores, as chunks are in the index:
    "Step 3: Reinforcement learning" says what "Usually there is a final stage" is about.

    Each sentence comes with what it needs to be read alone: a sentence that opens a list (ends in
    a colon) with its list, a short or back-referring one ("Back then it was called …") after the
    sentence before it.

    A guide's own question ("So what does model training mean?") answers none of the reader's and is
    left out, unless `with_questions` (the scope judgement asks only what the passage is about)."""
    candidates = []
    for n, passage in enumerate(passages, start=1):
        # Planted sentences are left out first, so that none comes in as another's context either.
        sentences = [s for s in split_sentences(passage.text) if not any(p in s or s in p for p in passage.planted)]
        heading = f"{passage.section}: " if passage.section else ""
        for i, sentence in enumerate(sentences):
            if len(sentence.split()) >= 4 and (with_questions or not is_question(sentence)):
                candidates.append((n, sentence, _readable_alone(sentences, i), heading))
    if not candidates:
        return []
    wanted = set(lexical_tokens(question))
    vectors = np.asarray(embed([question, *(h + s for _, s, _, h in candidates)]), dtype=np.float32)
    similarity = vectors[1:] @ vectors[0]
    overlap = [len(wanted & set(lexical_tokens(h + s))) / max(len(wanted), 1) for _, s, _, h in candidates]
    scores = 0.5 * np.clip(similarity, 0.0, 1.0) + 0.5 * np.asarray(overlap)
    asked = asked_kinds(question)
    if asked:  # "how long …?" is answered by a sentence that gives a duration
        scores += ASKED_KIND_BONUS * np.asarray([bool(asked & stated_kinds(s)) for _, s, _, _ in candidates])
    order = np.argsort(-scores, kind="stable")
    return [(candidates[i][0], candidates[i][2], float(scores[i])) for i in order]


def is_question(sentence: str) -> bool:
    return sentence.rstrip(" \"'”’»)").endswith("?")


ASKED_KIND_BONUS = 0.3  # about the gap between what answers and what is only on the topic
_UNIT_WORDS = r"(?:seconds?|minutes?|hours?|days?|weeks?|weekends?|months?|years?)"
_COUNTED_UNITS = _UNIT_WORDS.replace("seconds?", "seconds")  # "a second model" is not a duration
_ASKS_TIME = re.compile(
    r"\bhow (?:long|quick(?:ly)?|fast|soon)\b|\bhow much time\b|\btak(?:e|es|ing)\s+ages\b"
    r"|\b(?:quick(?:ly)?|fast|slow(?:ly)?|speed|speedy|instant(?:ly)?|time|time-?wise)\b"
    r"|\b(?:timeline|timescale|time-?frame|duration|turnaround)s?\b"
    # a unit of time counted, bounded or taken: "a weekend job or a year-long thing", "this week",
    # "needs months of compute"; not "these days", "the second one" or "a second model"
    rf"|\bhow many {_UNIT_WORDS}|\b{_UNIT_WORDS} or \w+\b"
    rf"|\b(?:\d+|an?|one|two|three|few|several|couple\s+of|this|next|within|takes?|took|needs?)\s+(?:\w+\s+)?{_COUNTED_UNITS}\b"
    rf"|\b{_UNIT_WORDS}[- ]long\b|\b{_UNIT_WORDS}\s+of\s+(?:compute|training|work|gpus?)\b",
    re.IGNORECASE,
)
_ASKS_COST = re.compile(
    r"\b(?:costs?|costly|pric(?:e|es|ey|y|ing)|expens\w*|cheap\w*|pay|budget|money|afford\w*|spend\w*|spent|dollars?)\b"
    r"|\bhow much\b(?! time)|\bset (?:us|me|you|them|a team) back\b",
    re.IGNORECASE,
)
_STATES_COST = re.compile(
    r"\b(?:costs?|costly|expens\w*|cheap\w*|pric(?:e|es|ey|y)|budget|afford\w*|dollars?)\b|\$\s?\d", re.IGNORECASE
)


def asked_kinds(question: str) -> set[str]:
    """The kinds of figure a question asks for: a duration ("how long"), a cost ("how expensive")."""
    return {kind for kind, asks in (("time", _ASKS_TIME), ("cost", _ASKS_COST)) if asks.search(question)}


def stated_kinds(sentence: str) -> set[str]:
    """The kinds of figure a sentence gives: a duration ("months"), a cost ("moderate cost", "$10M")."""
    kinds = {"time"} if _times(sentence) else set()
    return kinds | ({"cost"} if _STATES_COST.search(sentence) else set())


_LEANS_BACK = re.compile(r"^(?:it|this|that|these|those|they|such|back then|then)\b", re.IGNORECASE)


def _readable_alone(sentences: Sequence[str], i: int) -> str:
    """Sentence i with the list it opens, or after the sentence it leans on."""
    sentence = sentences[i]
    if sentence.endswith(":"):
        items = []
        for following in sentences[i + 1 :]:
            if not LIST_ITEM.match(following):
                break
            items.append(following.strip())
        return " ".join([sentence, *items])
    if i > 0 and (len(sentence.split()) < 8 or _LEANS_BACK.match(sentence)) and not LIST_ITEM.match(sentence):
        return f"{sentences[i - 1]} {sentence}"
    return sentence


QUOTE_ALREADY_SAID = 0.6  # the answer already holds this share of the sentence's own words
RUNNER_UP_WITHIN = 0.10  # a second sentence this close to the best is quoted too (0.07 until 2026-12-05, night)
QUOTED_ANSWER_WORDS = 80  # the runner-up is left out where the answer with both quotes would be longer


def says_new(text: str, said: set[str], question_words: set[str], *, empty: bool = True) -> bool:
    """Whether a quote says what an answer does not: under QUOTE_ALREADY_SAID of its own words (the
    question's left out) are among `said`, the answer's (`empty`: a text of no words of its own)."""
    own = set(lexical_tokens(text)) - question_words
    return empty if not own else len(own & said) / len(own) < QUOTE_ALREADY_SAID


def guide_quotes(answer: str, ranked: Sequence[Evidence], question: str) -> list[tuple[int, str]]:
    """The guides' sentences that answer the question (`ranked` for it by `ranked_evidence`), to
    quote after the model's answer: the best one, and the runner-up when it scores within
    RUNNER_UP_WITHIN of it, each left out when the answer (and the quote before it) already says
    it: most of its words, besides the question's, or the sentence word for word (a line the
    figure check quoted, with or without its list number).

    A small reader paraphrases loosely, takes a neighbouring fact or drops the figure; the guides'
    own sentence beside its answer gives staff the fact in the guides' words, cited. When two
    sentences score about the same, the ranking cannot tell which one answers, so both are shown.
    With the heading ranked with each sentence: tuning halves 86 → 91 of 108 facts, hold-out
    77 → 82 of 90 (README, Evaluation).

    A chosen sentence the answer already says gives way to the sentence after it, where that one
    leans on it (it is short, or opens with "This", "It" …: `_readable_alone` reads it after the
    one before) and the answer does not say it; it is quoted as going on from the answer ("… This
    involves learning the probabilistic relationships …" after "The key objective is to …
    imitate"): the reader often repeats the best sentence and stops there. Tuning halves 283 →
    288 of 346 facts, hold-out 269 → 271 of 334 (README).

    Recall is not bought with length: where the answer with both quotes would pass
    QUOTED_ANSWER_WORDS, only the first is quoted (tuning 288 → 287 facts, hold-out 271 → 270,
    `blind`'s median words 62.5 → 59)."""
    if not ranked:
        return []
    best = ranked[0]
    runner_up = next((c for c in ranked[1:] if c[1] not in best[1] and best[1] not in c[1]), None)
    chosen = [best] if runner_up is None or best[2] - runner_up[2] > RUNNER_UP_WITHIN else [best, runner_up]
    question_words = set(lexical_tokens(question))
    said = set(lexical_tokens(answer))
    quotes: list[tuple[int, str]] = []
    for n, sentence, _ in chosen:
        # A line the answer already quotes word for word (a figure repaired) is said, whatever the question holds.
        if without_list_number(sentence) in answer or not says_new(sentence, said, question_words):
            going_on = next((c[1] for c in ranked if c[0] == n and c[1].startswith(sentence + " ")), "")
            if not going_on or not says_new(going_on[len(sentence) :], said, question_words, empty=False):
                continue
            sentence = "… " + going_on[len(sentence) :].lstrip()
        words = sentence.removeprefix("… ")
        if any(words in quoted or quoted.removeprefix("… ") in words for _, quoted in quotes):
            continue  # a continuation and a runner-up that hold the same sentence
        quotes.append((n, sentence))
        said |= set(lexical_tokens(sentence)) - question_words  # the second is weighed against the first too
    if len(" ".join([answer, "The guides say:", *(sentence for _, sentence in quotes)]).split()) > QUOTED_ANSWER_WORDS:
        return quotes[:1]
    return quotes


# --- Figures the guides do not give ------------------------------------------------------------

_UNITS = ("second", "minute", "hour", "day", "week", "month", "year", "decade")
_FIGURE = re.compile(
    r"\$\s?\d[\d,.]*\s?(?:[kmb]\b|million|billion|thousand)?|\d[\d,.]*\s?(?:%|percent|million|billion|thousand)"
    r"|\b\d{2,}[\d,.]*|\b(?:millions?|billions?|thousands?|trillions?)\b|\b(?:" + "|".join(_UNITS) + r")s?\b",
    re.IGNORECASE,
)


def figures(text: str) -> set[str]:
    """The durations, amounts, shares and numbers from 10 up that a text states, each written one
    way ("months" and "month", "$10M" and "10 million"). Small bare numbers are left out: they
    number lists and layers, which answers may do in their own way."""
    found = set()
    for match in _FIGURE.findall(text):
        figure = match.lower().replace(" ", "").replace(",", "").replace("$", "").rstrip(".")
        for word, short in (("million", "m"), ("billion", "b"), ("thousand", "k"), ("percent", "%")):
            figure = figure.replace(word, short)
        found.add(figure[:-1] if figure.endswith("s") else figure)
    return found


def _kind(figure: str) -> str:
    return "time" if figure in _UNITS else "amount"


def unbacked_figures(sentence: str, evidence: str) -> set[str]:
    """Figures in the sentence that the evidence (the passages and the question) never states."""
    return figures(sentence) - figures(evidence)


def guide_sentence_for(sentence: str, passages: Sequence[Passage], question: str = "") -> tuple[int, str] | None:
    """The passage sentence that states the figure this answer sentence got wrong: the one sharing
    most subject words with it (or with the question, when the sentence names none) among those
    that state a figure of the same kind (a time, an amount). A candidate's section heading counts
    as its subject: "Cost: $10M-$100M+" under "Training requirements" is not fine-tuning's cost,
    and a sentence about fine-tuning gets no replacement from it."""
    kinds = {_kind(f) for f in figures(sentence)}
    words = _subject(sentence) or _subject(question)
    best: tuple[float, int, str] | None = None
    for n, passage in enumerate(passages, start=1):
        for candidate in split_sentences(passage.text):
            if not kinds & {_kind(f) for f in figures(candidate)}:
                continue
            overlap = len(words & _subject(f"{passage.section} {candidate}")) / max(len(words), 1)
            if best is None or overlap > best[0]:
                best = (overlap, n, candidate)
    return (best[1], best[2]) if best and best[0] > 0 else None


# --- A duration or cost against the guide line that gives both ------------------------------

# Ordered: "moderately expensive" is a moderate cost, not a high one.
_COST_LEVELS = (
    ("moderate", re.compile(r"\bmoderate(?:ly)?\b", re.IGNORECASE)),
    (
        "low",
        re.compile(
            r"\b(?:cheap\w*|inexpensive|low[- ](?:cost|price)\w*)|\b(?:cost|price)s? (?:is |are )?low\b", re.IGNORECASE
        ),
    ),
    (
        "high",
        re.compile(
            r"\b(?:expensive|costly|pric(?:e)?y|high[- ](?:cost|price)\w*|(?:big|major|large) expense)"
            r"|\b(?:millions?|billions?) of dollars|\$\s?\d[\d,.]*\s?(?:m|b|million|billion)\b",
            re.IGNORECASE,
        ),
    ),
)
_NEGATED = re.compile(r"\b(?:not|never|no|isn't|aren't|doesn't)\b", re.IGNORECASE)
_COST_VERB = re.compile(r"\bcosts?\b", re.IGNORECASE)
# Words that give a figure, or the verbs that carry one, rather than name what a line is about.
_FIGURE_WORDS = set(
    lexical_tokens(
        " ".join(
            [
                *_UNITS,
                "cost costs costly expensive expense cheap low moderate price pricey afford affordable spend",
                "dollars million millions billion billions thousands several takes requires typically",
            ]
        )
    )
)


def cost_level(text: str) -> str | None:
    """The cost level a text gives (low, moderate, high; the first found in that order of
    _COST_LEVELS), or None when it gives none or is negated."""
    if _NEGATED.search(text):
        return None
    for level, says in _COST_LEVELS:
        if says.search(text):
            return level
    return None


def _subject(text: str) -> set[str]:
    return set(lexical_tokens(text)) - _FIGURE_WORDS


def _figure_lines(passages: Sequence[Passage]) -> list[tuple[int, str]]:
    """The passage lines that give a duration and a cost together, such as a list item
    "Prompting: … (seconds, cheap)"."""
    return [
        (n, without_list_number(line))
        for n, passage in enumerate(passages, start=1)
        for line in split_sentences(passage.text)
        if _times(line) and cost_level(line)
    ]


def misread_figure_line(sentence: str, passages: Sequence[Passage], question: str = "") -> tuple[int, str] | None:
    """The guide line whose duration or cost this sentence misstates, or None.

    The passage-wide figure check passes "Prompting costs seconds." and "Preference optimization is
    costly." beside the five layers' list: "seconds" and "expensive" are in the passage, on other
    items or as the other figure. Here the sentence is held to the one line it is about (the only
    line sharing most of its subject words, or the question's when the sentence names none): its
    duration must be the line's, its cost level the line's, and a cost must not be given as a time.
    """
    kinds = stated_kinds(sentence)
    if not kinds or compared_lines(sentence, passages):  # two lines compared: `misread_comparison`'s
        return None
    lines = [(n, line, _subject(line)) for n, line in _figure_lines(passages)]
    best: tuple[int, str] | None = None
    for words in (_subject(sentence), _subject(question)):
        overlaps = sorted(((len(words & subject), n, line) for n, line, subject in lines), reverse=True)
        if overlaps and overlaps[0][0] > 0:
            if len(overlaps) > 1 and overlaps[1][0] == overlaps[0][0]:
                return None  # about two lines (a comparison): not one line's figures to check
            best = overlaps[0][1:]
            break
    if best is None:
        return None
    line = best[1]
    stated = figures(sentence)
    times = {f for f in stated if _kind(f) == "time"}
    line_times = _times(line)
    level = cost_level(sentence)
    wrong_time = bool(times) and not times & line_times
    wrong_level = level is not None and level != cost_level(line)
    # "Prompting costs seconds.", or "We would spend seconds." for "What would we spend?": a cost given
    # as a duration, with no cost level or amount beside it.
    asked_cost = bool(_COST_VERB.search(sentence)) or asked_kinds(question) == {"cost"}
    time_as_cost = bool(times) and asked_cost and level is None and not stated - times  # no amount
    return best if wrong_time or wrong_level or time_as_cost else None


# "X takes longer than Y": which figure each comparative says is X's larger one. A comparative
# counts only right before "than", up to three words between ("takes much longer to run than").
_MORE_COST = r"more (?:expensive|costly)|costlier|pricier|dearer|costs? more|(?:bigger|higher|greater) (?:cost|expense)"
_LESS_COST = r"cheaper|less (?:expensive|costly)|more affordable|costs? less|(?:lower|smaller) (?:cost|expense)"
_COMPARATIVES = (
    ("time", 1, r"longer|slower|lengthier|more time"),
    ("time", -1, r"shorter|quicker|faster|sooner|less time"),
    ("cost", 1, _MORE_COST),
    ("cost", -1, _LESS_COST),
)
_COMPARED = re.compile(
    "(?:"
    + "|".join(rf"\b(?P<{kind}_{'more' if larger > 0 else 'less'}>{words})\b" for kind, larger, words in _COMPARATIVES)
    + r")(?P<between>(?:\s+[\w'-]+){0,3}?)\s+than\b",
    re.IGNORECASE,
)
CLAUSE_END = re.compile(r"[,;:(]|\b(?:and|but|while|whereas|which)\b", re.IGNORECASE)
_NOT_COMPARED = re.compile(r"\b(?:not|never|no|isn't|aren't|doesn't|don't|hardly|rather)\b|n't\b", re.IGNORECASE)
_COST_ORDER = ("low", "moderate", "high")
_BOUNDED = re.compile(r"\b(?:neither|nor|less than|within|under|up to|at most|instead of)\b", re.IGNORECASE)


def compared_lines(
    sentence: str, passages: Sequence[Passage]
) -> tuple[str, int, tuple[int, str], tuple[int, str]] | None:
    """What a sentence that compares two guide lines claims: the kind (time or cost), 1 when it says
    the first line's is the larger, -1 the smaller, and the two lines (each its passage number and
    text). None for a question, a negated or hedged comparison ("not slower than", "rather than"),
    or a side that names no one line alone by its subject words."""
    if is_question(sentence):
        return None
    said = _COMPARED.search(sentence)
    if not said or said.group("between") and CLAUSE_END.search(said.group("between")):
        return None
    kind, larger = next(name.split("_") for name, text in said.groupdict().items() if text and name != "between")
    before = re.split(CLAUSE_END, sentence[: said.start()])[-1]
    if _NOT_COMPARED.search(before + said.group(0)):
        return None
    lines = [(n, line, _subject(line)) for n, line in _figure_lines(passages)]
    first = _only_line(before, lines)
    second = _only_line(re.split(CLAUSE_END, sentence[said.end() :])[0], lines)
    if first is None or second is None or first[1] == second[1]:
        return None
    return kind, 1 if larger == "more" else -1, first, second


def misread_comparison(sentence: str, passages: Sequence[Passage]) -> list[tuple[int, str]] | None:
    """The two guide lines that this sentence compares the other way round from their figures
    ("Fine-tuning takes longer than preference optimization." beside "(days, …)" and "(weeks,
    …)"), or None (`compared_lines`). Two equal figures make any "longer" or "cheaper" wrong;
    ranges that overlap are not judged."""
    compared = compared_lines(sentence, passages)
    if compared is None:
        return None
    kind, larger, first, second = compared
    a, b = _figure_range(first[1], kind), _figure_range(second[1], kind)
    if a is None or b is None:
        return None
    order = 1 if a[0] > b[1] else -1 if a[1] < b[0] else 0 if a == b else None
    return [first, second] if order is not None and order != larger else None


def misplaced_duration(sentence: str, passages: Sequence[Passage]) -> list[tuple[int, str]] | None:
    """The guide lines a sentence names by their labels, two or more ("Fine-tuning", "Prompting"),
    when it gives a duration that none of them gives ("Fine-tuning takes months, longer than
    prompting." beside "(days, …)" and "(seconds, …)"), or None.

    "Months" is in the passage, on pre-training's line, so the passage-wide check passes it, and
    `misread_figure_line` holds such a sentence to one line or, on a tie, to neither. A question,
    and a duration denied or bounded ("not months", "less than a day", "within weeks"), are left alone."""
    times = _times(sentence)
    if not times or is_question(sentence) or _NOT_COMPARED.search(sentence) or _BOUNDED.search(sentence):
        return None
    words = _subject(sentence)
    named: dict[str, tuple[int, str]] = {}  # by text: the same list in two passages is one line
    for n, line in _figure_lines(passages):
        label, colon, _ = line.partition(":")
        if colon and _subject(label) & words:
            named.setdefault(line, (n, line))
    if len(named) < 2:
        return None
    return list(named.values()) if times - set().union(*(_times(line) for line in named)) else None


def _times(text: str) -> set[str]:
    return {f for f in figures(text) if _kind(f) == "time"}


def _only_line(text: str, lines: Sequence[tuple[int, str, set[str]]]) -> tuple[int, str] | None:
    """The one guide line that shares the most subject words with the text, or None for none or a tie."""
    words = _subject(text)
    overlaps = sorted(((len(words & subject), n, line) for n, line, subject in lines), reverse=True)
    if not overlaps or overlaps[0][0] == 0 or (len(overlaps) > 1 and overlaps[1][0] == overlaps[0][0]):
        return None
    return overlaps[0][1], overlaps[0][2]


def _figure_range(line: str, kind: str) -> tuple[int, int] | None:
    """A line's duration (as positions in _UNITS, least and most) or cost level, to compare by."""
    if kind == "cost":
        level = cost_level(line)
        return (_COST_ORDER.index(level),) * 2 if level else None
    times = [_UNITS.index(f) for f in figures(line) if _kind(f) == "time"]
    return (min(times), max(times)) if times else None


# --- Layer attribution -------------------------------------------------------------------------

FIXED_REPLY_METHOD = "fixed reply: no passage passed the relevance threshold, so the model was not asked"


@dataclass(frozen=True)
class LayerShares:
    """How much each runtime layer, and the trained model beneath them, shaped some answer text."""

    prompt: float
    retrieval: float
    model: float

    def to_dict(self) -> dict[str, float]:
        return {"prompt": self.prompt, "retrieval": self.retrieval, "model": self.model}


def layer_shares(full: float, with_prompt: float, alone: float, with_passages: float | None = None) -> LayerShares:
    """Shares from the answer's mean log-likelihood per token under each context.

    `full` has the system prompt and the passages, `with_prompt` the prompt only, `alone` neither
    (a neutral system prompt), `with_passages` the passages only. exp(mean log-likelihood) is the
    answer's per-token probability; what the bare model already gives is the model's share, and
    what each layer adds on top is that layer's. With `with_passages` the layers' split is the
    Shapley value of the two-player game; without it the layers are stacked as the guides teach
    them, the system prompt on the model, then the passages on both.
    """
    p_full, p_prompt, p_alone = math.exp(full), math.exp(with_prompt), math.exp(alone)
    if with_passages is None:
        prompt_gain, retrieval_gain = p_prompt - p_alone, p_full - p_prompt
    else:
        p_passages = math.exp(with_passages)
        prompt_gain = 0.5 * ((p_prompt - p_alone) + (p_full - p_passages))
        retrieval_gain = 0.5 * ((p_passages - p_alone) + (p_full - p_prompt))
    parts = [max(prompt_gain, 0.0), max(retrieval_gain, 0.0), p_alone]
    total = sum(parts)
    prompt, retrieval, model = (round(part / total, 3) for part in parts)
    return LayerShares(prompt, retrieval, model)


def sentence_token_spans(sentences: Sequence[str], raw: str, pieces: Sequence[str]) -> list[list[int]]:
    """For each sentence, the indexes of the answer tokens that fall in it.

    The sentences were shown without the model's own [n] markers; the tokens are of the raw text.
    """
    clean_to_raw: list[int] = []
    clean = []
    position = 0
    for match in CITATION_MARKERS.finditer(raw):
        clean.append(raw[position : match.start()])
        clean_to_raw.extend(range(position, match.start()))
        position = match.end()
    clean.append(raw[position:])
    clean_to_raw.extend(range(position, len(raw)))
    clean_to_raw.append(len(raw))
    clean_text = "".join(clean)
    starts, offset = [], 0
    for piece in pieces:
        starts.append(offset + len(piece) - len(piece.lstrip()))  # where its text starts, after a space
        offset += len(piece)
    spans: list[list[int]] = []
    cursor = 0
    for sentence in sentences:
        found = clean_text.find(sentence, cursor)
        if found < 0:
            spans.append([])
            continue
        cursor = found + len(sentence)
        begin, end = clean_to_raw[found], clean_to_raw[cursor]
        spans.append([i for i, start in enumerate(starts) if begin <= start < end])
    return spans


def attribute(
    scored: dict[str, TokenLogprobs], raw: str, sentences: Sequence[str]
) -> tuple[LayerShares, list[LayerShares | None]]:
    """The answer's layer shares and each sentence's, from its tokens' log-probabilities per context.

    `scored` maps "full", "prompt", "alone" and optionally "passages" to the answer's tokens (a
    server may split the answer differently under each context: each is mapped on its own).
    A sentence's shares come from the mean log-likelihood of its tokens; the answer's are its
    sentences' shares weighted by their length, so that a sentence the prompt alone dictated
    ("Ahoy, matey!") counts for its length instead of vanishing in a mean over the whole answer.
    """
    spans = {
        name: sentence_token_spans(sentences, raw, [piece for piece, _ in values]) for name, values in scored.items()
    }

    def shares(sentence: int | None) -> LayerShares | None:
        means = {}
        for name, values in scored.items():
            indexes = range(len(values)) if sentence is None else spans[name][sentence]
            if not indexes:
                return None
            means[name] = sum(values[i][1] for i in indexes) / len(indexes)
        return layer_shares(means["full"], means["prompt"], means["alone"], means.get("passages"))

    per_sentence = [shares(i) for i in range(len(sentences))]
    spans_full = spans["full"]
    weighted = [(len(span), layers) for span, layers in zip(spans_full, per_sentence, strict=True) if layers]
    if not weighted:
        return shares(None) or LayerShares(0.0, 0.0, 1.0), per_sentence
    total = sum(weight for weight, _ in weighted)
    prompt, retrieval, model = (
        round(sum(weight * getattr(layers, part) for weight, layers in weighted) / total, 3)
        for part in ("prompt", "retrieval", "model")
    )
    return LayerShares(prompt, retrieval, model), per_sentence


LAYER_NAMES = {"prompt": "system prompt", "retrieval": "passages", "model": "model's own knowledge"}


def describe_layers(shares: dict[str, Any]) -> str:
    """One line for people: "passages 82% · model's own knowledge 16% · system prompt 2%"."""
    ranked = sorted(LAYER_NAMES, key=lambda layer: -float(shares[layer]))
    return " · ".join(f"{LAYER_NAMES[layer]} {float(shares[layer]):.0%}" for layer in ranked)
