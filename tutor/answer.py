"""One pass through the tutor: question -> retrieve -> compose -> generate (streamed) -> cite."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from functools import cache, partial
from typing import Any

from .config import K_MAX, K_MIN, Settings
from .contract import AnswerModel
from .embed import Embedder
from .errors import ModelError, QuestionError
from .explain import (
    ASKED_KIND_BONUS,
    CLAUSE_END,
    FIXED_REPLY_METHOD,
    CitingStream,
    Evidence,
    SentenceSupport,
    SupportScorer,
    asked_kinds,
    attribute,
    evidence_sentence,
    guide_quotes,
    guide_sentence_for,
    is_question,
    misplaced_duration,
    misread_comparison,
    misread_figure_line,
    ranked_evidence,
    says_new,
    stated_kinds,
    unbacked_figures,
)
from .gate import ModelGate, Queued
from .injection import (
    INSTRUCTIONS_REPLY,
    planted_sentences,
    repeats_planted,
    tries_to_instruct,
    unsourced_warnings,
    without_planted,
)
from .lexical import lexical_tokens
from .llm import ChatModel, Generation, Message, TokenLogprobs
from .markers import NOT_COVERED, NOT_COVERED_SAID, NOT_TEXT, without_list_number
from .prompts import (
    NEUTRAL_SYSTEM_PROMPT,
    NO_PRESET,
    Preset,
    PromptLayout,
    compose_messages,
    pick_preset,
)
from .retrieve import (
    Passage,
    Retriever,
    Turn,
    asks_for_further_reading,
    asks_for_history,
    asks_to_act,
    best_first,
    is_reading_list,
    merge_found,
    names_own_things,
    refers_back,
    select_for_prompt,
    standalone_query,
    tells_a_date,
    without_subject_change,
)

OUT_OF_SCOPE_ANSWER = (
    f"{NOT_COVERED} I answer questions about how AI language models are trained "
    "(pre-training, fine-tuning, preference optimization, prompting and RAG), from the guides."
)
ACT_REPLY = (
    "I can only answer here in the chat, from the guides on how AI language models are trained: "
    "I cannot send, save, print or schedule anything."
)
# The model's judgement of a question that some passage only just covers ("which GPU should we buy
# to run a model in the office?" reaches 0.22 against a passage on training compute), made on the
# passages' three sentences that best answer it: asked whether the question was on the guides' topic,
# the model let in "how do I fine tune my guitar" and "how do I export a chatgpt conversation to pdf".
SCOPE_JUDGE_PROMPT = (
    "You check whether a passage from a guide on how AI language models are trained helps answer a staff "
    "member's question. Reply with one word: yes if the passage is about what the question asks, no if the "
    "question asks about something else."
)
SCOPE_JUDGE_SENTENCES = 3
# The largest corpus whose sentences warm_up embeds, all of them (44 chunks: about 3 s with
# all-mpnet-base-v2 on 2 cores; 500 chunks, about 2,500 sentences, fit the embedder's cache).
WARM_UP_CHUNKS = 500

# The guides' best sentence for a yes/no question, asked on its own: the reader, with three passages
# before it, often opens with the question's own lean ("Yes, it changes the model." beside "Only the
# first three actually change the model.").
STANCE_CHECK_PROMPT = (
    "You check a question against a passage from a guide. If the passage shows the answer is yes, reply Yes; "
    "if it shows the answer is no, reply No. Reply with one word."
)
# "Yes," "No." "Yes!" as a word of their own: not "No one …", "No-code …" or "No doubt, …".
_OPENING_STANCE = re.compile(r"^\W*(yes|no)\s*(?=[,.!;:]|[—–-]\s|$)", re.IGNORECASE)
# What a question may open with before it asks anything: "so", "thanks", "quick question", "um".
_OPENING_FILLER = re.compile(
    r"\W*(?:(?:so|and|but|ok|okay|btw|hey|hi|also|please|sorry|thanks|thank\s+you|actually|wait|um+|uh+|well"
    r"|just|nice|great|cool|quick\s+question|one\s+more\s+thing)\b\W*)*",
    re.IGNORECASE,
)
# A yes/no question opens with a verb ("Is pre-training quick?", "so can it …") or ends with a tag
# (", right?"); what it asks about, its claim, is the rest. "Can you list …" asks for something.
_YES_NO_OPENING = re.compile(
    rf"^{_OPENING_FILLER.pattern}"
    r"(?P<verb>(?:is|are|was|were|does|do|did|can|could|will|would|should|has|have|had)\b"
    r"(?: it (?:true|right|correct|the case) that\b)?)?",
    re.IGNORECASE,
)
_YES_NO_TAG = re.compile(
    r",\s*(?:right|correct|true|yes or no|isn'?t it|doesn'?t it|don'?t they)\s*\?+\s*$", re.IGNORECASE
)
_ASKS_WHAT = re.compile(r"^\W*(?:what|how|why|which|who|whom|whose|when|where)\b", re.IGNORECASE)
_ASKS_FOR_SOMETHING = re.compile(  # not "would you recommend fine-tuning over RAG?": that asks yes or no
    r"\b(?:can|could|would|will) (?:you|u)(?: please)? (?:(?:list|give|tell|explain|show|describe|summari[sz]e"
    r"|help|name|walk|define|clarify|break|outline|compare|recap|point)\b"
    r"|(?:recommend|suggest)\s+(?:(?:me|us)\s+)?(?:a|an|any|some|anything|something|good|more|further)\b)",
    re.IGNORECASE,
)
_WHETHER = re.compile(  # what follows the request: "tell me whether …", "tell me: is …", "a yes or no"
    r"\W*(?:(?:me|us)\s+)?(?:(?:out|understand|know)\s+)?(?:if|whether)\b"
    r"|\W*(?:me|us)?\s*[:,–—-]\s*(?:is|are|was|were|does|do|did|can|could|will|would|should|has|have)\b"
    r"|[^?]*\byes\s+or\s+no\b",
    re.IGNORECASE,
)
# Not "no-code": a hyphenated "no" names something.
_NEGATION = re.compile(
    r"\b(?:not|no(?!-)|never|cannot|neither|nor|none|isnt|arent|doesnt|dont|didnt|cant|wont)\b|n[’']t\b",
    re.IGNORECASE,
)
# "inexpensive" denies "expensive"; "invaluable" and "information" deny nothing.
_NEGATING_PREFIX = re.compile(
    r"^(?:un|non-?)(?=\w{4})|^(?:in|im)(?=(?:expensive|correct|accurate|effective|efficient|sufficient|complete|"
    r"possible|practical|precise|appropriate)\b)",
    re.IGNORECASE,
)
_OR = re.compile(r"\bor\b", re.IGNORECASE)
RESTATES_CLAIM = 0.75  # share of the question's claim words an opening sentence repeats to answer it: all of three


@dataclass(frozen=True)
class Answer:
    """Everything about one answer: what the clients show and what `--json` prints."""

    question: str
    answer: str
    sources: tuple[Passage, ...]
    sentences: tuple[SentenceSupport, ...]
    in_scope: bool | None  # None: retrieval was off, so the guides were not asked
    timings: dict[str, float | None]
    model: str
    preset: str
    corpus_version: str
    query: str
    retrieval: bool
    attribution: dict[str, Any] | None = None
    prompt: tuple[Message, ...] = field(default=(), repr=False)
    history: tuple[Turn, ...] = field(default=(), repr=False)
    generated: str = field(default="", repr=False)  # the model's own text, before citations were checked
    attribution_error: str | None = None  # why the attribution could not be measured
    warnings: tuple[str, ...] = ()  # prompt injection noticed: in the question, a passage, or the answer
    # This answer's own generation (its tokens' log-probabilities), for its attribution alone.
    generation: Generation | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The JSON contract of DESIGN.md (plus the query, corpus version and prompt sent): see tutor.contract."""
        return AnswerModel.from_answer(self).to_json_dict()


def check_question(question: str, limit: int) -> str:
    """The question stripped, or a QuestionError saying why it cannot be asked."""
    if not isinstance(question, str) or not question.strip():
        raise QuestionError("the question is empty")
    question = question.strip()
    if len(question) > limit:
        raise QuestionError(f"the question is {len(question)} characters long; the limit is {limit}")
    if NOT_TEXT.search(question):
        raise QuestionError("the question is not plain text (control characters, binary data or invalid UTF-8)")
    return question


def check_k(k: int | None) -> None:
    """A QuestionError unless `k` (most passages in the prompt) is None or within the settings' range."""
    if k is not None and not K_MIN <= k <= K_MAX:
        raise QuestionError(f"k must be between {K_MIN} and {K_MAX}, not {k}")


def fit_history(history: Sequence[Turn], budget: int, count_tokens: Callable[[str], int]) -> tuple[list[Turn], int]:
    """The latest turns whose tokens fit in `budget`, and how many older ones were left out.

    Every token of history is prefilled for the answer and again for each attribution pass: 100
    long turns held the model 96 s where an answer takes 3. The oldest turns matter least to a
    follow-up, so they go first. A turn that is not text (a lone surrogate) is refused here, where
    the model's tokenizer would otherwise fail on it.
    """
    kept: list[Turn] = []
    used = 0
    for user_turn, assistant_turn in reversed(history):
        if NOT_TEXT.search(user_turn) or NOT_TEXT.search(assistant_turn):
            raise QuestionError("a turn of the history is not plain text (control characters or invalid UTF-8)")
        used += count_tokens(user_turn) + count_tokens(assistant_turn)
        if used > budget:
            break
        kept.append((user_turn, assistant_turn))
    return kept[::-1], len(history) - len(kept)


def history_left_out(kept: int) -> str:
    """The warning of an answer whose history was cut to its budget."""
    if not kept:
        return "The conversation is long: the model read none of its earlier turns, only this question."
    return f"The conversation is long: the model read only its last {kept} turn{'s' if kept > 1 else ''}."


def _where_said(text: str, said: Sequence[str]) -> re.Match[str] | None:
    """Where these consecutive sentences of the model stand in the answer's text, with the
    citation markers after each, for a repair to replace them."""
    return re.search(r"\s*".join(re.escape(sentence) + r"(?:\[\d+\])*" for sentence in said), text)


def repair_figures(
    text: str, sentences: list[SentenceSupport], passages: Sequence[Passage], question: str
) -> tuple[str, list[SentenceSupport], list[str]]:
    """Sentences stating a duration, an amount or a number that their passages (nor the question) do
    not give, that misstate the duration or cost of the guide line they are about, that compare
    two such lines the other way round ("Fine-tuning takes longer than preference optimization."
    beside "days" and "weeks"), or that name two lines or more and a duration none of them has, are
    replaced by the guides' sentence (or those lines), quoted, and said so.

    A small reader often takes a neighbouring figure or its own ("3 years" beside "months of GPU
    compute"), or the other figure of the same line ("Prompting costs seconds." beside "(seconds,
    cheap)"); the guides' sentence is what the staff should read instead. A sentence with no such
    passage sentence stays, uncited, and the warning says which figure is not the guides'.
    """
    warnings: list[str] = []
    for i, sentence in enumerate(sentences):
        # Its figures must be those of the passages it rests on; with none, of any passage.
        backing = [passages[n - 1] for n in sentence.supported_by] or passages
        wrong = unbacked_figures(sentence.text, " ".join([question, *(p.text for p in backing)]))
        # The guide line the sentence is about, when it gives that line's duration or cost otherwise.
        misread_line = misread_figure_line(sentence.text, passages, question)
        # About two guide lines or more, named: not one line's to check.
        named_lines = misplaced_duration(sentence.text, passages)
        if wrong:
            said = ", ".join(sorted(wrong))
            replacement = misread_line or guide_sentence_for(sentence.text, passages, question)
            if named_lines:
                guides = named_lines
            elif replacement is not None:
                guides = [replacement]
            else:
                sentences[i] = replace(sentence, supported_by=())
                warnings.append(f"A figure in this answer ({said}) is in none of its passages: check it in the guides.")
                continue
            warning = f"A sentence of this answer gave a figure ({said}) that its passages do not; it was replaced"
        elif named_lines:
            guides = named_lines
            warning = "A sentence of this answer gave layers a duration their guide lines do not; it was replaced"
        elif misread_line:
            guides = [misread_line]
            warning = "A sentence of this answer gave a duration or cost other than its guide line's; it was replaced"
        elif compared := misread_comparison(sentence.text, passages):
            guides = compared
            warning = "A sentence of this answer compared two layers the other way round from their guide lines; it was"
            warning += " replaced"
        else:
            continue
        said_at = _where_said(text, [sentence.text])
        if said_at:
            text = f"{text[: said_at.start()]}{_guides_say(guides, cited=True)}{text[said_at.end() :]}"
        sentences[i] = SentenceSupport(
            _guides_say(guides), tuple(dict.fromkeys(n for n, _ in guides)), 1.0, replaced=sentence.text
        )
        warnings.append(f"{warning} by the guides' own {'sentence' if len(guides) == 1 else 'lines'}.")
    return text, sentences, warnings


def _guides_say(guide_sentences: Sequence[tuple[int, str]], *, cited: bool = False) -> str:
    """The guides' sentences quoted in place of the model's, each with its citation when `cited`."""
    return "The guides say: " + " ".join(f"“{said}”{f'[{n}]' if cited else ''}" for n, said in guide_sentences)


def asks_for_something(question: str) -> bool:
    """A request ("can you recommend a good book on this?"), not a claim to confirm: a Yes or No
    opening answers the request, and the guides cannot contradict it. Only where the question opens
    with it: "Is RLHF costly? Can you explain?" asks yes or no, and so does "can you tell me whether
    …"."""
    asked = without_subject_change(question)
    found = _ASKS_FOR_SOMETHING.search(asked)
    if found is None or not _OPENING_FILLER.fullmatch(asked[: found.start()]):
        return False
    return not _WHETHER.match(asked[found.end() :])


def implied_stance(sentence: str, question: str) -> str | None:
    """The yes or no an answer's opening sentence gives without saying the word: to a yes/no
    question, a sentence that repeats the question's claim (RESTATES_CLAIM of its words) affirms it
    ("Is pre-training quick?" → "Pre-training is quick, …"), and denies it with a negation in the
    clause that repeats it ("… is not optional.", "inexpensive"; not "…, not raw text").
    None when the question is not a yes/no question, asks for something ("can you list …"), offers a
    choice, or is negative itself ("can't fine-tuning fix that?": which reply means what is unclear),
    and when the sentence is itself a question (an answer that repeats the question first)."""
    tag = _YES_NO_TAG.search(question)
    opening = _YES_NO_OPENING.match(question)
    asks_yes_or_no = bool(tag or (opening and opening.group("verb")))
    if not asks_yes_or_no or _ASKS_WHAT.match(question) or asks_for_something(question):
        return None
    if is_question(sentence):  # the question repeated before its answer
        return None
    untagged = question[: tag.start()] if tag else question
    if _OR.search(untagged) or _NEGATION.search(untagged):
        return None
    claim_text = untagged[opening.end() if opening else 0 :]
    claim = set(lexical_tokens(claim_text))
    if len(claim) < 2:
        return None
    if len(claim & _claim_words_in(sentence, claim)[0]) / len(claim) < RESTATES_CLAIM:
        return None
    # The negation that counts is in the clause holding most of the claim ("…, not raw text" is not).
    clauses = [(c, *_claim_words_in(c, claim)) for c in CLAUSE_END.split(sentence) if c.strip()]
    clause, _, denied = max(clauses, key=lambda c: len(claim & c[1]), default=("", set(), False))
    return "no" if denied or _NEGATION.search(clause) else "yes"


def _claim_words_in(clause: str, claim: set[str]) -> tuple[set[str], bool]:
    """The claim's words a clause holds, its negated forms ("inexpensive") counted, and whether one was negated."""
    said = set(lexical_tokens(clause))
    unprefixed = set(lexical_tokens(" ".join(_NEGATING_PREFIX.sub("", word) for word in clause.split())))
    denied = (unprefixed & claim) - said
    return said | denied, bool(denied)


def repair_stance(
    text: str,
    sentences: list[SentenceSupport],
    question: str,
    topic: str,
    *,
    rank: Callable[[str], Sequence[Evidence]],
    judge: Callable[[list[Message]], str],
) -> tuple[str, list[SentenceSupport], list[str]]:
    """An opening Yes or No the guides' own sentence contradicts is replaced by the guides' answer
    and that sentence, quoted, and said so; so is an opening sentence that says yes or no in other
    words (`implied_stance`: "Prompting retrains the model, …" to "prompting retrains it, right?").
    A later sentence the figure check already replaced by that same guide line is then dropped, so
    that the line is quoted once.

    The model (`judge`, a one-word reply) reads the question with only the passages' sentence that
    best answers it (`rank`: the passages' sentences ranked for a text, `ranked_evidence`). That
    sentence is the best for the question itself ("Does it change the model?" → "Only the first
    three actually change the model."); the model reads it with `topic`, which
    says what "it" is. A bare "Yes." is replaced with the sentence after it, which makes its claim.
    Yes/no questions of the tuning halves: 6 → 8 of 13 openings right, none turned wrong (README).
    """
    if asks_for_something(question):  # "Yes, the staff chapter recommends …" was replaced by "No." and a quote
        return text, sentences, []
    # Not a sentence the figure check already replaced by the guides' own.
    first = sentences[0].text if sentences and not sentences[0].quoted and sentences[0].replaced is None else ""
    opening = _OPENING_STANCE.match(first)
    stance = opening.group(1) if opening else implied_stance(first, question) if first else None
    if stance is None:
        return text, sentences, []
    bare = opening is not None and not first[opening.end() :].strip(" ,.!;:")
    bare = bare and len(sentences) > 1 and not sentences[1].quoted
    own = sentences[:2] if bare else sentences[:1]
    said_at = _where_said(text, [s.text for s in own])
    ranked = rank(question) if said_at else []
    if not said_at or not ranked:
        return text, sentences, []
    n, evidence, _ = ranked[0]
    prompt: list[Message] = [
        {"role": "system", "content": STANCE_CHECK_PROMPT},
        {"role": "user", "content": f"Passage: {evidence}\nQuestion: {topic}"},
    ]
    try:
        judged = _OPENING_STANCE.match(judge(prompt))
    except ModelError as exc:  # the answer stands unchecked
        said = f"opening “{stance}”" if opening else f"{stance.lower()} in other words"
        return text, sentences, [f"The answer's {said} could not be checked ({exc})."]
    if not judged or judged.group(1).lower() == stance.lower():
        return text, sentences, []
    guides = judged.group(1).capitalize()
    quoted = f"{guides}. The guides say: “{evidence}”"
    opening_said = f"{text[: said_at.start()]}{quoted}[{n}]"
    rest, after = text[said_at.end() :], sentences[len(own) :]
    # A later sentence the figure check replaced by this same guide line is not said twice.
    said_again = {_guides_say([(n, line)]) for line in (evidence, without_list_number(evidence))}
    for later in [s for s in after if s.replaced is not None and s.text in said_again]:
        rest = re.sub(r"\s*" + re.escape(f"{later.text}[{later.supported_by[0]}]"), "", rest, count=1)
        after.remove(later)
    text = opening_said + rest
    replaced = SentenceSupport(quoted, (n,), 1.0, replaced=" ".join(s.text for s in own))
    said = f"opened with “{stance}”" if opening else f"said {stance.lower()} in other words"
    warning = (
        f"This answer {said}, but the guides' sentence that answers the question "
        f"says {guides.lower()}: the opening was replaced by the guides' own sentence."
    )
    return text, [replaced, *after], [warning]


def rank_by_asked_figures(found: Sequence[Passage], query: str) -> list[Passage]:
    """Passages that give the kind of figure the question asks for ("how long": a duration) move
    up by ASKED_KIND_BONUS of rank score: MiniLM ranks a passage on the topic ("pre-training lays
    the groundwork") above the one that answers ("Pre-training: … (months, expensive)")."""
    asked = asked_kinds(query)
    if not asked:
        return list(found)
    bonus = [ASKED_KIND_BONUS if asked & stated_kinds(p.text) else 0.0 for p in found]
    raised = [replace(p, rank_score=p.rank_score + b) for p, b in zip(found, bonus, strict=True)]
    return best_first(raised)


def is_fixed_reply(text: str) -> bool:
    """An answer the tutor gave without asking the model (out of scope, or a refused order): it is
    kept out of the history sent to the model, which would otherwise repeat it."""
    return text.strip() in (OUT_OF_SCOPE_ANSWER, INSTRUCTIONS_REPLY, ACT_REPLY) or text.strip().startswith(NOT_COVERED)


@dataclass(frozen=True)
class Token:
    """A piece of the answer's text, as the model writes it (citations added at sentence ends)."""

    text: str


CORRECTED = "\n\nCorrected from the guides:\n"
QUOTES_UNDER = "\n\nThe guides say: “"  # what opens the guides' sentences quoted under an answer


def correction(streamed: str, answer: Answer) -> str:
    """What a client that showed the streamed text adds after it: the answer as corrected once
    streaming ended (an opening or a figure replaced by the guides' own sentence), or nothing.
    Spaces do not count: the model's trailing newline is not a repair."""
    if streamed.split() == answer.answer.split():
        return ""
    return f"{CORRECTED}{answer.answer}"


def as_corrected(turn: str) -> str:
    """An earlier answer as the model should read it: a client sends back what it was streamed, and
    after a correction only the corrected answer stands; the guides' sentences quoted under it are
    left out (with them in its history, the model wrote "The guides say: …" of its own, quoting
    sentences no guide has)."""
    answer = turn.rpartition(CORRECTED)[2]
    said, opening, quotes = answer.rpartition(QUOTES_UNDER)
    # Only a block of quotes that ends the answer: a sentence the figure check replaced opens with
    # the same words and stays, as does everything after it.
    return said if opening and _QUOTES_BLOCK.fullmatch(quotes) else answer


_QUOTES_BLOCK = re.compile(r"[^\n]*?”\[\d+\](?: “[^\n]*?”\[\d+\])*\s*")  # after QUOTES_UNDER


@dataclass(frozen=True)
class Answered:
    """The finished answer, before its attribution (which follows as Explained, when asked for)."""

    answer: Answer


@dataclass(frozen=True)
class Explained:
    """The same answer with its layer attribution."""

    answer: Answer


# What Tutor.stream yields; front ends match on the type, never on order or count.
Event = Token | Queued | Answered | Explained
# The question searched alone (limit 8), on first read and once at most: the follow-up rule reads
# it for a short question with turns kept, the scope check when passages were found and the
# judgement is on; a refused question, or one asked with retrieval off, is never searched.
FoundAlone = Callable[[], Sequence[Passage]]


COMPARE_MAX_TOKENS = 40  # about two short sentences; see the README on compare mode's time
# The live RAG demonstration: one question, the layers added one by one (label, system prompt, passages).
COMPARE_WAYS = (
    ("Model alone", False, False),
    ("+ system prompt", True, False),
    ("+ retrieval", False, True),
    ("+ both", True, True),
)


READING_LIST_WORDS = 60  # a reading list quoted under an answer is cut after this many words


def reading_list_quote(answer: str, passages: Sequence[Passage], question: str) -> list[tuple[int, str]]:
    """Asked for further reading, the guides' reading list among the passages, quoted whole (its
    first READING_LIST_WORDS words) unless the answer already gives most of its words: quoted
    sentence by sentence, the best was "Discusses models, training neural nets, ...", without the
    work's title or author."""
    if not asks_for_further_reading(question):
        return []
    for n, passage in enumerate(passages, start=1):
        if is_reading_list(passage.section):
            words = without_planted(passage.text, passage.planted).split()
            listed = " ".join(words[:READING_LIST_WORDS]) + (" …" if len(words) > READING_LIST_WORDS else "")
            new = says_new(listed, set(lexical_tokens(answer)), set(lexical_tokens(question)))
            return [(n, listed)] if new else []
    return []


@dataclass(frozen=True)
class Prepared:
    """A question ready for the model: checked, its history fitted, its scope decided, its passages
    found. `prepare` makes it without the model; the doors that only search use the same step."""

    question: str
    preset: Preset
    history: tuple[Turn, ...]
    query: str  # what was searched: the question without an opening ("unrelated, but"), or a follow-up with its turn
    passages: tuple[Passage, ...]
    corpus_version: str
    warnings: tuple[str, ...]
    # The reply to a question the model is not asked: one that tries to change the tutor's
    # instructions (INSTRUCTIONS_REPLY), or asks it to act outside the chat (ACT_REPLY); else "".
    fixed_reply: str
    in_scope: bool | None  # None when retrieval is off
    retrieval: bool
    started: float
    retrieved_at: float
    # The texts the model must judge in or out of scope before it answers (the question, and a
    # follow-up's joined query): the cosine check was unsure. Empty once decided.
    scope_to_judge: tuple[str, ...] = ()

    @property
    def asks_model(self) -> bool:
        return self.in_scope is not False


class Tutor:
    """The question-answering pipeline; parts are passed in (see `build_tutor` for the real ones)."""

    def __init__(
        self,
        *,
        retriever: Retriever | None,
        chat: ChatModel,
        embedder: Embedder,
        presets: dict[str, Preset],
        settings: Settings,
        gate: ModelGate | None = None,
    ) -> None:
        self.retriever = retriever
        self.chat = chat
        self.embedder = embedder
        self.presets = presets
        self.settings = settings
        self.gate = gate or ModelGate(slots=1, max_waiting=settings.max_waiting)

    def stream(
        self,
        question: str,
        history: Sequence[Turn] = (),
        *,
        preset: str | None = None,
        retrieval: bool = True,
        k: int | None = None,
        max_tokens: int | None = None,
        explain: bool = False,
        quote: bool = True,
    ) -> Iterator[Event]:
        """Yield Token pieces as the answer is generated, then Answered, then (`explain`) Explained
        with the attribution. `quote` off leaves out the guides' sentences under the answer
        (compare mode shows what the model alone makes of each layer).

        Three steps: `prepare` (checks, scope, retrieval: a value), `_generate` (the model, under
        the gate) and `_finish` (checks and repairs of the text, the Answer). While the model is
        busy with other questions, Queued items say how many are ahead; a full line raises
        BusyError before anything is yielded. A scope the model must judge is judged in the
        question's own turn at the gate, after it was told its place. The model is held through
        the attribution: it then reuses the log-probabilities read while generating, which another
        question's generation in between would throw away.
        """
        prepared = self.prepare(question, history, preset=preset, retrieval=retrieval, k=k, judged=False)
        ticket = self.gate.join() if prepared.asks_model else None
        try:
            if ticket is not None:
                # Told its place at once, and judged in its turn: never a silent wait, nor a second turn.
                yield from self._wait_turn(ticket)
            prepared = self._decide_scope(prepared)
            if ticket is not None and not prepared.asks_model:  # judged off topic: the model is free again
                self.gate.leave(ticket)
                ticket = None
            citer = CitingStream(
                SupportScorer(prepared.passages, self.embedder.embed_one, prepared.question)
                if prepared.passages
                else None
            )
            generation = Generation(self.messages_for(prepared))
            if ticket is None:
                yield Token(citer.feed(prepared.fixed_reply or OUT_OF_SCOPE_ANSWER))
                first_token_at, generated = None, ""
            else:
                first_token_at, generated = yield from self._generate(prepared, citer, generation, max_tokens)
            rest = citer.finish()
            if rest:
                yield Token(rest)
            answer, added = self._finish(
                prepared, citer, generation if ticket is not None else None, generated, first_token_at, quote=quote
            )
            if added:
                yield Token(added)
            yield Answered(answer)
            if explain:
                yield Explained(self._explain(answer))
        finally:
            if ticket is not None:
                self.gate.leave(ticket)

    def prepare(
        self,
        question: str,
        history: Sequence[Turn] = (),
        *,
        preset: str | None = None,
        retrieval: bool = True,
        k: int | None = None,
        judged: bool = True,
    ) -> Prepared:
        """Everything decided before the model is asked to answer: the question checked, the
        history that fits, whether the question is in scope, and the passages for it. Where the
        cosine check is unsure of the scope, the model judges it, in its turn at the gate; with
        `judged` off that is left to the caller (`Prepared.scope_to_judge`, `_decide_scope`), as
        `stream` does once the question has been told its place."""
        s = self.settings
        started = time.perf_counter()
        question = check_question(question, s.max_question_chars)
        chosen_preset = pick_preset(self.presets, preset or s.preset)
        check_k(k)
        history = [(asked, as_corrected(said)) for asked, said in history if not is_fixed_reply(said)]
        recent = history[-s.max_history_turns :] if s.max_history_turns else []
        kept, left_out = fit_history(recent, s.history_token_budget, self.chat.count_tokens)
        passages: list[Passage] = []
        corpus_version = ""
        warnings = [history_left_out(len(kept))] if left_out else []
        # The model is not asked, the guides not searched.
        fixed_reply = INSTRUCTIONS_REPLY if tries_to_instruct(question) else ACT_REPLY if asks_to_act(question) else ""
        searched = retrieval and not fixed_reply
        # Searched and judged with its typing slips corrected ("moedl"); the model reads it as typed.
        read = self.retriever.corrected(question) if searched and s.correct_spelling and self.retriever else question
        asked = without_subject_change(read)  # what the question asks, less an opening
        # The question's words searched alone, once and only when read: both the follow-up rule and
        # the scope check may read it.
        found_alone = cache(partial(self._search_alone, asked))
        # A follow-up is searched with the turn before it; a question with a topic of its own alone,
        # and it is in or out of scope by itself, whatever came before.
        follow_up = searched and self._is_follow_up(read, kept, found_alone)
        query = standalone_query(read, kept) if follow_up else asked
        if fixed_reply == INSTRUCTIONS_REPLY:
            warnings.append(
                "The question asks the tutor to change its instructions or reveal its set-up; the model was not asked."
            )
        elif retrieval and not fixed_reply:
            # A follow-up is searched as asked too: joined to the turn before it, its own words
            # ("how does it learn from its mistakes?", "what is rlhf?") were outranked by that turn's.
            passages, corpus_version = self.retrieve(query, *((asked,) if follow_up else ()), k=k)
            if asks_for_history(asked) and not any(tells_a_date(p.text) for p in passages):
                # "who came up with RLHF?" found the passages on RLHF, which were judged on topic.
                passages = []
        # In scope or not by the question itself; a follow-up's turn before it only helps the model
        # read "it" ("got it. what's the weather in London?" was answered from the guides). One
        # about the staff member's own things ("does it work on my phone?") is judged on its own
        # words alone: joined to a turn on RAG, the model judged it on RAG.
        unsure = bool(passages) and self.scope_is_unsure(asked, found_alone)
        joined = (query,) if follow_up and not names_own_things(asked) else ()
        to_judge = (asked, *joined) if unsure else ()
        prepared = Prepared(
            question=question,
            preset=chosen_preset,
            history=tuple(kept),
            query=query,
            passages=tuple(passages),
            corpus_version=corpus_version,
            warnings=tuple(warnings),
            fixed_reply=fixed_reply,
            in_scope=bool(passages) if retrieval or fixed_reply else None,
            retrieval=retrieval,
            started=started,
            retrieved_at=time.perf_counter(),
            scope_to_judge=to_judge,
        )
        if not judged:
            return prepared
        with self.gate.hold() if to_judge else nullcontext():
            return self._decide_scope(prepared)

    def _search_alone(self, question: str) -> list[Passage]:
        return self.retriever.search(question, limit=8) if self.retriever is not None else []

    def _is_follow_up(self, question: str, kept: Sequence[Turn], found_alone: FoundAlone) -> bool:
        """Whether the question leans on the conversation kept for it (`refers_back`). A short one
        names a topic of its own when its words alone find a passage (`found_alone`, cosine at least
        `own_topic_score`): "What is fine-tuning?" 0.51, "RAG cost?" 0.39, against "How long?" 0.12,
        "Examples?" 0.31."""
        if not kept or not refers_back(question):
            return False
        if refers_back(question, names_topic=True) or self.retriever is None:
            return True  # a pronoun or an opening "and" leans on the conversation whatever it names
        return max((p.score for p in found_alone()), default=0.0) < self.settings.own_topic_score

    def scope_is_unsure(self, question: str, found_alone: FoundAlone | None = None) -> bool:
        """Whether the cosine check is unsure of this question's scope, so the model is asked: its
        best passage under `scope_judge_below` and none holding all its words. Near the guides'
        topic, cosine alone cannot tell: on the tuning halves an answered question scored 0.220 and
        an off-topic one 0.275. `found_alone` gives the question searched alone (limit 8), where
        the caller has it."""
        below = self.settings.scope_judge_below
        if not below or self.retriever is None:
            return False
        found = found_alone() if found_alone is not None else self._search_alone(question)
        best = max((p.score for p in found), default=0.0)
        return best < below and not any(p.has_all_terms for p in found)

    def _decide_scope(self, prepared: Prepared) -> Prepared:
        """The question's scope where the cosine check was unsure: the model's judgement, asked
        once the caller holds the model's gate. Does what the passages say best for the question
        answer it? A short call (two tokens out) aside from the conversation, so that the model's
        cached system prompt is kept for the answer. Then the warnings of the passages kept.

        A follow-up (its search query with the turn before it, the second text to judge) is off
        topic only when the model also says no to the joined query, a second call: asked alone,
        "and can people use it straight away?" was judged off topic, joined to its fine-tuning turn
        it was not."""
        passages = prepared.passages
        if prepared.scope_to_judge and all(self._judged_no(text, passages) for text in prepared.scope_to_judge):
            passages = ()
        planted = [
            f"A passage from “{p.guide}” has text that reads as an instruction to the model; "
            "it was left out of the prompt."
            for p in passages
            if p.planted
        ]
        return replace(
            prepared,
            # Retrieval ends with the scope decided: a judgement (and its wait) counts in it, as before.
            retrieved_at=time.perf_counter() if prepared.scope_to_judge else prepared.retrieved_at,
            passages=passages,
            in_scope=bool(passages) if prepared.in_scope is not None else None,
            warnings=(*prepared.warnings, *planted),
            scope_to_judge=(),
        )

    def _judged_no(self, question: str, passages: Sequence[Passage]) -> bool:
        """The model says the passages' best sentences for the question are not about what it asks;
        the caller holds the model's gate."""
        best = ranked_evidence(passages, question, self.embedder.embed, with_questions=True)[:SCOPE_JUDGE_SENTENCES]
        if not best:  # nothing to read (every sentence planted or short): the cosine check stands
            return False
        messages: list[Message] = [
            {"role": "system", "content": SCOPE_JUDGE_PROMPT},
            {
                "role": "user",
                "content": f"Passage: {' '.join(sentence for _, sentence, _ in best)}\nQuestion: {question}",
            },
        ]
        return self._judge(messages).strip().lower().startswith("no")

    def messages_for(self, prepared: Prepared) -> list[Message]:
        """The prompt for a prepared question (none when the model is not asked)."""
        if not prepared.asks_model:
            return []
        s = self.settings
        best = (
            evidence_sentence(prepared.passages, prepared.question, self.embedder.embed)
            if s.evidence_sentence
            else None
        )
        layout = PromptLayout(headings=s.passage_headings, evidence=best[1] if best else None)
        return compose_messages(
            prepared.preset.system_prompt, prepared.passages, prepared.history, prepared.question, layout
        )

    def _wait_turn(self, ticket: object) -> Iterator[Queued]:
        """How many are ahead, said at once and then every second until the ticket holds the model:
        a client that left is then noticed and its place freed."""
        ahead = self.gate.ahead(ticket, timeout=0)
        while ahead:
            yield Queued(ahead)
            ahead = self.gate.ahead(ticket, timeout=1.0)

    def _generate(
        self, prepared: Prepared, citer: CitingStream, generation: Generation, max_tokens: int | None
    ) -> Generator[Token, None, tuple[float | None, str]]:
        """Stream the answer through the citer, the model held; returns the first token's time and
        the model's own text."""
        s = self.settings
        # Context-aware decoding contrasts the prompt with the same prompt without passages.
        contrast = (
            compose_messages(prepared.preset.system_prompt, [], prepared.history, prepared.question)
            if prepared.passages and s.context_aware_decoding
            else None
        )
        first_token_at: float | None = None
        generated = ""
        for piece in self.chat.stream(
            generation.messages,
            max_tokens=max_tokens or s.max_answer_tokens,
            temperature=s.temperature,
            generation=generation,
            contrast=contrast,
        ):
            if first_token_at is None:
                first_token_at = time.perf_counter()
            generated += piece
            shown = citer.feed(piece)
            if shown:
                yield Token(shown)
        return first_token_at, generated

    def _finish(
        self,
        prepared: Prepared,
        citer: CitingStream,
        generation: Generation | None,
        generated: str,
        first_token_at: float | None,
        *,
        quote: bool = True,
    ) -> tuple[Answer, str]:
        """The Answer from the streamed text, checked (scope said, planted text repeated, links no
        passage has, figures the passages do not give, a yes or no the guides contradict, said or implied)
        and with the guides' sentences quoted under it; and the text added after streaming, to show."""
        s = self.settings
        passages, question = prepared.passages, prepared.question
        in_scope = prepared.in_scope
        if in_scope and NOT_COVERED_SAID.search(citer.text):
            in_scope = False
        warnings = list(prepared.warnings)
        planted = [sentence for p in passages for sentence in p.planted]
        if planted and any(repeats_planted(sentence.text, planted) for sentence in citer.sentences):
            warnings.append("This answer repeats instruction-like text planted in a guide: do not trust it.")
        text, sentences = citer.text.strip(), list(citer.sentences)
        added = ""
        if generation is not None:
            warnings += unsourced_warnings(text, [without_planted(p.text, p.planted) for p in passages])
        if generation is not None and passages and in_scope:
            text, sentences, repaired = repair_figures(text, sentences, passages, question)
            warnings += repaired
            topic = prepared.query  # what was searched (Prepared.query)
            # The stance check and the quotes rank the same sentences for the same text but in follow-ups.
            rank = cache(partial(ranked_evidence, passages, embed=self.embedder.embed))
            if s.check_stance:
                text, sentences, repaired = repair_stance(
                    text, sentences, question, topic, rank=rank, judge=self._judge
                )
                warnings += repaired
            quotes = (
                (reading_list_quote(text, passages, topic) or guide_quotes(text, rank(topic), topic))
                if quote and s.quote_guides
                else []
            )
            for i, (n, said) in enumerate(quotes):  # the guides' own sentences for the question, under the answer
                quoted = f"{QUOTES_UNDER.lstrip()}{said}”" if i == 0 else f"“{said}”"
                added += f"\n\n{quoted}[{n}]" if i == 0 else f" {quoted}[{n}]"
                sentences.append(SentenceSupport(quoted, (n,), 1.0, quoted=True))
            text += added
        finished = time.perf_counter()
        started = prepared.started
        answer = Answer(
            question=question,
            answer=text,
            sources=prepared.passages,
            sentences=tuple(sentences),
            in_scope=in_scope,
            timings={
                "retrieve_s": round(prepared.retrieved_at - started, 4),
                "first_token_s": round(first_token_at - started, 4) if first_token_at else None,
                "total_s": round(finished - started, 4),
                "explain_s": None,
            },
            model=self.chat.name if generation is not None else "",
            preset=prepared.preset.name,
            corpus_version=prepared.corpus_version,
            query=prepared.query,
            retrieval=prepared.retrieval,
            prompt=tuple(generation.messages) if generation is not None else (),
            history=prepared.history,
            generated=generated,
            warnings=tuple(warnings),
            generation=generation,
        )
        return answer, added

    def _judge(self, messages: list[Message]) -> str:
        """The model's short reply (two tokens) to a check, aside from the conversation, whose cache
        is kept for it; the caller holds the model's gate."""
        return "".join(self.chat.stream(messages, max_tokens=2, temperature=0.0, aside=True))

    def retrieve(self, query: str, *also: str, k: int | None = None) -> tuple[list[Passage], str]:
        """The passages a search query puts in the prompt (search, select, widen; sentences that
        read as instructions marked as planted) and the corpus version they come from. One function
        for the tutor and for the doors that only search (tutor.langchain, MCP). Each query in
        `also` is searched too, and a passage found by several keeps its best rank."""
        s = self.settings
        check_k(k)
        if self.retriever is None:
            raise QuestionError("retrieval is on but there is no index: run `tutor ingest`")
        found = merge_found(*(self._search(text, k) for text in (query, *also)))
        corpus_version = self.retriever.corpus_version
        passages = select_for_prompt(
            found,
            k=k or s.k,
            min_score=s.min_score,
            margin=s.score_margin,
            token_budget=s.passage_token_budget,
            count_tokens=self.chat.count_tokens,
        )
        if s.widen_passages:
            passages = self.retriever.widen(
                passages, token_budget=s.passage_token_budget, count_tokens=self.chat.count_tokens
            )
        return [replace(p, planted=planted_sentences(p.text)) for p in passages], corpus_version

    def _search(self, query: str, k: int | None) -> list[Passage]:
        s = self.settings
        assert self.retriever is not None
        if s.figure_aware_ranking and asked_kinds(query):
            return rank_by_asked_figures(self.retriever.search(query, limit=max(k or s.k, 16)), query)[:8]
        return self.retriever.search(query, limit=max(k or s.k, 8))

    def explain(self, answer: Answer) -> Answer:
        """`_explain` for an answer already given; it waits its turn for the model."""
        if self.settings.attribution == "off" or not answer.generated:
            return self._explain(answer)
        with self.gate.hold():
            return self._explain(answer)

    def _explain(self, answer: Answer) -> Answer:
        """The answer with its layer attribution: the generated text scored under ablated prompts.

        No generation, only prefill passes of the same answer; the full prompt's log-probabilities
        were read while generating. The prompt-only context is scored last so that llama.cpp's
        cache holds the preset's system prompt again for the next question.
        """
        method = self.settings.attribution
        if method == "off":
            return answer
        started = time.perf_counter()
        if not answer.generated:
            fixed = {"prompt": 1.0, "retrieval": 0.0, "model": 0.0, "method": FIXED_REPLY_METHOD}
            return replace(answer, attribution=fixed, timings={**answer.timings, "explain_s": 0.0})
        system, question, history = answer.prompt[0]["content"], answer.question, answer.history
        contexts = {"alone": compose_messages(NEUTRAL_SYSTEM_PROMPT, [], history, question)}
        if method == "shapley" and answer.sources:
            contexts["passages"] = [{"role": "system", "content": NEUTRAL_SYSTEM_PROMPT}, *answer.prompt[1:]]
        contexts["prompt"] = compose_messages(system, [], history, question)
        contexts["full"] = list(answer.prompt)
        # Contexts that are the same messages (no passages; the neutral preset) are scored once.
        scored: dict[str, TokenLogprobs] = {}
        try:
            for name, messages in contexts.items():
                same = next((other for other, m in contexts.items() if m == messages and other in scored), None)
                scored[name] = (
                    scored[same]
                    if same
                    else self.chat.token_logprobs(messages, answer.generated, generation=answer.generation)
                )
        except ModelError as exc:  # the answer stands; only its explanation is missing
            return replace(answer, attribution_error=str(exc))

        overall, per_sentence = attribute(scored, answer.generated, [s.text for s in answer.sentences])
        sentences = tuple(replace(s, layers=layers) for s, layers in zip(answer.sentences, per_sentence, strict=True))
        label = "shapley" if "passages" in scored else "layered"
        attribution = {
            **overall.to_dict(),
            "method": f"{label} ablation of the answer's log-likelihood ({len(scored)} contexts)",
        }
        explain_s = round(time.perf_counter() - started, 4)
        return replace(
            answer, attribution=attribution, sentences=sentences, timings={**answer.timings, "explain_s": explain_s}
        )

    def compare(
        self, question: str, history: Sequence[Turn] = (), *, preset: str | None = None, k: int | None = None
    ) -> Iterator[tuple[int, Event]]:
        """Answer one question the four ways of COMPARE_WAYS, yielding (way, event).

        Each way yields its Token pieces, Answered, then Explained with its attribution,
        scored at once while the model still holds that answer's log-probabilities. Answers are
        capped at COMPARE_MAX_TOKENS so that four columns stay comparable and readable in a room.
        """
        for way, (_, with_prompt, with_passages) in enumerate(COMPARE_WAYS):
            chosen = (preset or self.settings.preset) if with_prompt else NO_PRESET.name
            stream = self.stream(
                question,
                history,
                preset=chosen,
                retrieval=with_passages,
                k=k,
                max_tokens=COMPARE_MAX_TOKENS,
                explain=True,
                quote=False,
            )
            for item in stream:
                yield way, item

    def warm_up(self, preset: str | None = None) -> None:
        """Prefill a preset's system prompt and make the passages' sentence vectors now, so that the first
        question does not pay for them."""
        self.embedder.embed_one("warm up")  # loads the embedder too
        if self.retriever is not None:
            self.retriever.warm_up()
        if self.retriever is not None and self.retriever.chunk_count <= WARM_UP_CHUNKS:
            # The guides' sentences as the scope judgement and the quotes rank them, embedded into
            # the embedder's cache now: a judged question then embeds only itself. Not for a large
            # corpus, whose passages seldom come back and would take minutes to embed.
            guides = [
                Passage(
                    id="",
                    text=text,
                    guide=str(meta["guide"]),
                    path=str(meta["path"]),
                    section=str(meta["section"]),
                    position=0,
                    score=0.0,
                )
                for meta, text in self.retriever.chunks()
            ]
            ranked_evidence(guides, "warm up", self.embedder.embed, with_questions=True)
        system = pick_preset(self.presets, preset or self.settings.preset).system_prompt
        messages = [{"role": "system", "content": system}, {"role": "user", "content": "Hello"}]
        contrast = messages if self.settings.context_aware_decoding else None  # warms the second context
        with self.gate.hold():
            for _ in self.chat.stream(messages, max_tokens=1, temperature=0.0, contrast=contrast):
                pass

    def ask(self, question: str, history: Sequence[Turn] = (), *, explain: bool = True, **options: Any) -> Answer:
        """The finished answer, without streaming, and with its attribution unless `explain` is off."""
        answer = None
        for event in self.stream(question, history, explain=explain, **options):
            if isinstance(event, Answered | Explained):
                answer = event.answer  # Explained, when it comes, is the last
        assert answer is not None, "the answer stream ended without an Answer"
        return answer
