"""Search the index: Chroma's vector ranking fused with BM25, and passages chosen for the prompt."""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .embed import Embedder
from .errors import IndexMissingError
from .index import ABOUT, TEXT, OpenedVersion, Store, card_name, embedded_by, kind_of
from .lexical import chunk_words, lexical_tokens, with_initialisms_spelled_out
from .markers import CITATION_MARKERS, LIST_ITEM, NOT_COVERED_SAID, split_sentences
from .spelling import Speller


@dataclass(frozen=True)
class Passage:
    """A retrieved chunk, with how well it matches the question."""

    id: str
    text: str
    guide: str
    path: str
    section: str
    position: int
    score: float  # cosine similarity of the query (initialisms spelled out) and passage, 0..1: decides relevance
    lexical: float = 0.0  # BM25 score relative to the best one for this query, 0..1
    rank_score: float = 0.0  # what the passages are ordered by: score (or its blend with the best sentence's) + BM25
    has_all_terms: bool = False  # the passage contains every word of the query (stemmed, no stopwords)
    planted: tuple[str, ...] = ()  # sentences that read as instructions to the model (tutor.injection)
    named: int = 0  # what the question names, first always: 2 the reading list it asks for, 1 its guide's card
    embedding: tuple[float, ...] = field(default=(), repr=False, compare=False)  # () for a widened passage


Turn = tuple[str, str]


def standalone_query(question: str, history: Sequence[Turn]) -> str:
    """The search query for a follow-up: the last question (and the ones before it that it leans
    on, `_topic_questions`), the first sentence of the last answer, and this question.

    A follow-up such as "How long does it take?" has no topic of its own; the previous turn
    supplies it. The answer's first sentence carries the guides' own words ("creates the
    foundational model"), which the question alone lacks: with it, the passage that answers
    "What is pre-training? How long does it take?" ranked 3rd instead of 10th. This costs no
    model call, which matters when prefill is the bottleneck.
    """
    if not history:
        return question
    answered = history[-1][1]
    first = _FIRST_SENTENCE.match(CITATION_MARKERS.sub("", answered).strip())
    said = first.group(0)[:300] if first and not NOT_COVERED_SAID.search(first.group(0)) else ""
    return " ".join(part for part in (*_topic_questions(history), said, question) if part)


def _topic_questions(history: Sequence[Turn], reach: int = 3) -> list[str]:
    """The last question and, while the earliest taken leans back by its words itself, the ones
    before it (up to `reach` in all): a follow-up of a follow-up ("which part of it is the costly
    one?" after "and how long would that run?") gets its topic from the question that named it.
    A short question with no such word ("How long?") is not reached past: telling it from "What is
    RAG?" needs the index."""
    taken = [history[-1][0]]
    for earlier, _ in reversed(history[-reach:-1]):
        if not _leans_back_by_its_words(taken[0]):
            break
        taken.insert(0, earlier)
    return taken


def refers_back(question: str, *, names_topic: bool = False) -> bool:
    """The question leans on the conversation: a pronoun ("how long does it take?"), an opening
    "and"/"so"/"what about", or too few words of its own to have a topic ("How long?"), unless
    those words alone find their passage (`names_topic`: "What is fine-tuning?" asked after
    pre-training is a question of its own, and was searched with the pre-training turn).

    A question that opens by changing the subject ("switching topics - do they clean the data?")
    does not: its pronouns point inside it. One that only opens a new question ("new question: how
    long does it take?") may still lean back, so the rest of it decides. "IT" in capitals is the
    department, not a pronoun, unless the whole question is in capitals."""
    if _SUBJECT_CHANGE.search(question):
        return False
    asked = _what_is_asked(question)
    return bool(_REFERS_BACK.search(asked)) or (len(set(lexical_tokens(asked))) <= 2 and not names_topic)


def _leans_back_by_its_words(question: str) -> bool:
    """`refers_back` without the rule for short questions: a pronoun or an opening such as "and"
    or "so", after no change of subject."""
    return not _SUBJECT_CHANGE.search(question) and bool(_REFERS_BACK.search(_what_is_asked(question)))


def _what_is_asked(question: str) -> str:
    """The question less its opening, and less "IT" the department where it has lower case."""
    asked = without_subject_change(question)
    return _IT_DEPARTMENT.sub("", asked) if any(character.islower() for character in asked) else asked


def without_subject_change(question: str) -> str:
    """The question without an opening that changes the subject or announces a new question
    ("unrelated, but what can a base model do?" -> "what can a base model do?"): what it asks, to
    search for and judge."""
    for opening in (_SUBJECT_CHANGE, _NEW_QUESTION):
        rest = opening.sub("", question, count=1)
        if rest != question:
            rest = _LEFT_OVER_OPENING.sub("", rest)
            return rest if rest.strip() else question  # "Different question?" asks nothing else
    return question


def best_first(passages: Iterable[Passage]) -> list[Passage]:
    """Passages by rank score, best first, after those the question names: whatever a later score
    adds (a follow-up's second search, the bonus for an asked duration) cannot push the card of the
    guide "how long is the five layers guide?" names below the layers' durations."""
    return sorted(passages, key=lambda passage: (passage.named, passage.rank_score), reverse=True)


def merge_found(*found: Sequence[Passage]) -> list[Passage]:
    """The passages of several searches, best first (`best_first`); one found by several keeps its
    best place: named by some search, else its best rank score."""
    if len(found) == 1:
        return list(found[0])
    best: dict[str, Passage] = {}
    for passage in best_first(passage for passages in found for passage in passages):
        best.setdefault(passage.id, passage)
    return list(best.values())


def is_covered(passages: Sequence[Passage], min_score: float) -> bool:
    """Some passage is similar enough to the query, or holds every word of it (MiniLM does not
    know acronyms such as RLHF, which the glossary defines)."""
    return any(p.score >= min_score or p.has_all_terms for p in passages)


def asks_about_a_guide(question: str) -> bool:
    """The question is about a guide as a text (who wrote it, whom it is for, how long it is, its
    sections, where it comes from, whether it is finished, what it covers as a whole), not only
    about its subject: then the guides' cards (tutor.index.guide_card) are searched too. It names
    a guide ("the staff chapter", "that layers piece", a title in quotes) and asks about it as a
    text; "who wrote Hamlet?" or "which documents are used for fine-tuning?" do not. Searched for
    every question, a card took a prompt place from the answering passage; searched for every
    question naming a guide, it took one from content questions too (docs/evaluation.md)."""
    return bool(_A_GUIDE.search(question) and _ABOUT_A_GUIDE.search(question))


def asks_for_history(question: str) -> bool:
    """The question asks for a fact of history: when something came out, was invented or first
    used ("what year did chatgpt come out", "since when has that term been around?"), or who
    invented, coined or first built it ("who came up with that?", "who's behind rlhf?"). A guide
    without dates tells no history, though its passages are about the thing asked of
    (`tells_a_date`). Not "when is fine-tuning used?", "who does the labelling?", nor a question
    on the order of training's steps ("when was the base model created, before fine-tuning?")."""
    return bool(_HISTORY.search(question)) and not _WITHIN_TRAINING.search(question)


def tells_a_date(text: str) -> bool:
    """The text gives a year, a decade or a century ("2017", "the 1950s", "the 20th century")."""
    return bool(_A_DATE.search(text))


_HISTORY = re.compile(
    # when: a year or decade asked, or when something came out, was made or began
    r"\b(?:what|which)\s+(?:year|decade)\b|\bsince\s+when\b|\bhow\s+long\s+ago\b|\bhow\s+old\s+(?:is|are)\b"
    r"|\b(?:release|launch|publication)\s+date\b|\bmonth\s+and\s+year\b|\bbeen\s+around\b|\b(?:origins?|history)\s+of\b"
    r"|\bwhen(?:['’]d|\s+(?:did|was|were|has|have))\b[^?.]{0,60}?\b(?:come\s+out|came\s+out|release[ds]?|launch(?:ed)?"
    r"|invent(?:ed)?|introduced|created|coined|published|founded|first|started|began|begin|start|appear(?:ed)?"
    r"|announced)\b"
    # who: invented, coined or first built it
    r"|\bwho\s+(?:first\s+|originally\s+)?(?:invented|came\s+up\s+with|coined|founded|pioneered|discovered|thought\s+of"
    r"|dreamed\s+up|(?:created|made|built)\s+the\s+(?:very\s+)?first)\b"
    r"|\bwho(?:['’]s|\s+(?:is|was|are|were))\s+behind\b|\bresearchers?\s+behind\b|\binventors?\b"
    r"|\b(?:who|which|what)\s+(?:company|lab|researchers?|people|person|scientists?|firm|organi[sz]ation)\b[^?.]{0,40}?"
    r"\b(?:invented|came\s+up\s+with|coined|originally)\b",
    re.IGNORECASE,
)
# When within training, not in history: "when did the cleaning step begin?", "… before fine-tuning?"
_WITHIN_TRAINING = re.compile(
    r"\b(?:before|after|during|steps?|stages?|phases?|process|prompts?|cut-?off)\b", re.IGNORECASE
)
_A_DATE = re.compile(r"\b(?:1[5-9]|20)\d{2}(?:['’]?s)?\b|\b\d{1,2}(?:st|nd|rd|th)[- ]century\b", re.IGNORECASE)


def names_own_things(question: str) -> bool:
    """The question is about the staff member's own things ("does it work on my phone?", "is that
    allowed under our company policy?"): a subject of its own, which the guides cannot know, even
    where "it" leans on the turn before. Not "my bad", "my question was", "to my knowledge"."""
    return bool(_OWN_THINGS.search(question))


_OWN_THINGS = re.compile(
    r"(?<!\boh\s)\b(?:my|our|mine|ours)\b(?!\s*(?:[,!?]|$))(?!\s+(?:bad|question|questions|first|last|earlier|previous"
    r"|understanding|guess|words|own\s+words|point|mistake|knowledge|apologies)\b)",
    re.IGNORECASE,
)


def asks_to_act(question: str) -> bool:
    """The staff member asks the tutor to do something outside the chat: send, keep, print or
    schedule something ("ok can u email that to my manager", "remind me about it tomorrow", "put it
    in my calendar", "let my boss know"). The tutor only answers in the chat, from the guides.
    Judged with the turn before it, such a request read as on the guides' topic and was answered
    ("Yes, I can email that to your manager."). Asking for the answer again in another form ("say
    that more simply", "put it in an email format", "print the layers as a list") is not such a
    request, nor is asking again ("remind me what RLHF stands for")."""
    return bool(_ACTS_OUTSIDE.search(question.replace("\u2010", "-").replace("\u2011", "-")))


# A request's opening, at the start, after a sentence, a dash, a comma or an "and then": "ok",
# "cool,", "can u", "please". Possessive (`*+`): a long run of marks is read once, not tried again
# from every mark (a 2,000-character question of full stops took 2.5 s).
_REQUEST = (
    r"(?:^|[.!?;:–—]\s*+|\s-\s|,\s*+|\b(?:and|then|also)\s+)\W*+"
    r"(?:(?:ok|okay|cool|great|nice|perfect|thanks|thank\s+you|ta|right|so|and|also|now|then|pls|plz|please|kindly"
    r"|hey|btw|just|oh)\b\W*+)*+"
    r"(?:(?:can|could|would|will)\s+(?:you|u|ya|it)\s+(?:please\s+|pls\s+|also\s+|just\s+|quickly\s+)*"
    r"|i(?:\s+(?:need|want|would\s+like)|['’]d\s+like)\s+(?:you\s+)?to\s+"
    r"|(?:please|pls|plz|kindly|go\s+ahead\s+and)\s+)?"
    r"(?:help\s+(?:me|us)\s+(?:to\s+)?)?"
)
# Where a thing goes that is not the chat: a mailbox, a drive, a calendar, a channel, a person.
_OUTSIDE = (
    r"(?:e-?mail|inbox|mail|drive|onedrive|dropbox|sharepoint|desktop|calendar|diary|agenda|outlook|slack"
    r"|teams|whatsapp|channel|wiki|confluence|notion|jira|printer|phone|notes|to-?do(?:\s+list)?|folder"
    r"|manager|boss|colleagues?|team|everyone|department)(?![-\w])"
)
_ACTS_OUTSIDE = re.compile(
    _REQUEST + r"(?:"
    # a verb that only acts outside the chat, on something ("print the above", "cc jan")
    r"(?:e-?mail|mail|forward|fwd|text|sms|whatsapp|slack|dm|ping|tweet|print|download|export|upload"
    r"|attach|bookmark|schedule|book|reserve|install)\s+(?:me|us|it|this|that|these|those|them|him|her"
    r"|the|a|an|my|our|everyone)\b|b?cc\s+\w"
    # a reminder set for a time or a task, not "remind me what RLHF stands for"
    r"|remind\s+(?:me|us|him|her|them|everyone|the\s+team)\s+(?:about\s+(?:it|this|that|the\s+above)\s+)?"
    r"(?:to\s+\w|tomorrow|tmrw|tmr|later|tonight|next\b|on\s+(?:mon|tue|wed|thu|fri|sat|sun)|at\s+\d|first\s+thing"
    r"|in\s+(?:\d+|an?|a\s+few|a\s+couple\s+of)\s+(?:mins?|minutes?|hrs?|hours?|days?|weeks?)"
    r"|this\s+(?:morning|afternoon|evening|week)|every\b|(?:mon|tues|wednes|thurs|fri|satur|sun)day|in\s+the\s+morning)"
    # word passed on to someone ("let my boss know", "tell the team about this")
    r"|(?:tell|let|inform|notify|update|message)\s+(?:my|our|the)\s+(?:manager|boss|team|colleagues?|lead|director|hr)\b"
    # something sent to a person or an address ("send it to jan", "share this with hr")
    r"|(?:send|share|forward|fwd)\s+(?:it|this|that|these|those|them|the\s+\w+)\s+(?:to|with)\s+(?!(?:me|us|the\s+model)\b)\w"
    # a verb that acts outside the chat where it names a place outside it ("save it to my drive")
    r"|(?:send|share|post|save|store|put|add|stick|pop|copy|paste|move|drop|file|log|write|note)\b[^.?!]{0,40}?"
    rf"\b(?:to|into|in|on|onto|via|over|by|with)\s+(?:(?:my|our|the|his|her|their|a|an|whole)\s+){{0,2}}{_OUTSIDE}"
    # something the tutor cannot make: a reminder, a ticket, an invite
    r"|(?:set|create|make|open|file|raise|log|add|book|schedule|send)\s+(?:up\s+)?(?:me\s+)?(?:a|an|the)?\s*"
    r"(?:reminder|alarm|ticket|jira\s+issue|(?:calendar\s+)?invite|meeting|appointment|e-?mail)\b"
    r")"
    # not the answer again in another form: "… in notes form", "… as a list"
    r"(?![^.?!]*\b(?:form|format|formatted|style|language|wording|version|terms|list|table|bullets?)\b)",
    re.IGNORECASE,
)

_A_TEXT = (
    r"(?:guides?|chapters?|blogs?|(?:blog\s+)?posts?|articles?|docs|doc|glossary|entry|entries|course|page|drafts?"
    r"|write-?ups?|pieces?|bits?|section|definitions?|thing|papers?|modules?|lessons?)"
)
_A_GUIDE = re.compile(
    # A guide named by a word for a text ("the layers piece", "that course section", "Trooster's
    # chapter"), or by a title of three words or more in quotes ("'How AI Assistants Learn'").
    r"(?:\b(?:the|this|that|these|those|your|each|which|what"
    r"|(?!(?:what|it|that|there|here|who|where|let|he|she)['’]s)\w+['’]s)\s+(?:\S+\s+){0,5}?"
    rf"{_A_TEXT}\b(?!-)"
    r"(?!\s*(?:models?|data|of|phases?|stages?|steps?|text|training|versions?)\b))"
    r"|(?<!\w)['‘\"“](?:[^'’\"”\s]+\s+){2,}[^'’\"”\s]+['’\"”](?!\w)",
    re.IGNORECASE,
)
_ABOUT_A_GUIDE = re.compile(
    # who wrote or published it
    r"\b(?:authors?|authored|wrote|written\s+(?:by|for)|writers?|who\s+(?:writes|made|created|compiled)|publish\w*"
    r"|by\s+whom|credit(?:ed|s)?"
    # how long it is
    r"|reading\s+time|to\s+read|how\s+long\s+(?:is|are)|how\s+many\s+(?:minutes|words|pages|sections)"
    r"|minutes?\s+(?:long|read)|length|word\s+count"
    # where it comes from, what kind of text it is, whether it is finished
    r"|come\s+from|from\s+(?:which|what)|originally|(?:kind|sort|type)\s+of\s+(?:source|page|site|text|document)"
    r"|finished|unfinished|complete|incomplete|full\s+text|cuts?\s+off|truncated"
    # whom it is for
    r"|meant\s+for|aimed\s+at|intended\s+for|audience|who\s+should\s+read|for\s+whom"
    # its parts and what it covers as a whole
    r"|sections|headings|(?:which|what)\s+parts|section-?wise|outline|gist|overview|overall)\b"
    r"|\bwho(?:'s|’s|s|\s+is|\s+are)\b[^?]*\bfor\W*$"
    r"|\bwhere(?:'s|’s|\s+is|\s+are|\s+does|\s+do)\b[^?]*\bfrom\b|\bwhat\b[^?]*\bcover(?:s|ed)?\W*$"
    rf"|\bwhat(?:'s|’s|\s+is)\s+(?:the|this|that)\s+(?:\S+\s+){{0,5}}?{_A_TEXT}\s+about\W*$",
    re.IGNORECASE,
)


def is_reading_list(section: str) -> bool:
    """A guide's section of further reading, by its heading ("Want to know more?", "References")."""
    return bool(_READING_LIST.search(section))


def asks_for_further_reading(question: str) -> bool:
    """The question asks where to read more: then a guide's reading list ("Want to know more?",
    "Further reading") comes first, which shares no word with "any further reading?"."""
    return bool(_FURTHER_READING.search(question))


_FURTHER_READING = re.compile(  # a reader who wants to read on; not "does it learn more from fewer examples?"
    r"\b(?:further|recommended|suggested|more)\s+reading\b|\breading\s+list|\bto\s+read\s+(?:further|more|up\s+on)\b"
    r"|\b(?:where|how)\s+(?:can|could|do|should|would)\s+(?:i|we)\s+(?:learn|read|find\s+out)\s+more(?:\s+about\b|\W*$)"
    r"|\b(?:i|we)(?:\s+want|\s+would\s+like|'d\s+like)\s+to\s+(?:learn|know|read)\s+more\b"
    r"|\b(?:recommend\w*|suggest\w*|is\s+there|are\s+there|got)\s+(?:anything|something)\s+(?:else\s+)?(?:good\s+)?"
    r"to\s+read\b(?!\s+(?:into|from)\b)"
    r"|\b(?:recommend|suggest)\w*\s+(?:(?:me|us)\s+)?(?:a|an|any|some)\s+(?:(?:good|great|recent|introductory|few)\s+)*"
    r"(?:books?|articles?|papers?)\b(?!-)"
    r"|\b(?:anything|something|what)\s+(?:else\s+)?(?:(?:i|we)\s+(?:should|could|can|might)|(?:should|could|can)\s+(?:i|we))"
    r"\s+read\b(?!\s+(?:into|from)\b)"
    r"|\b(?:books?|papers?|articles?)\s+(?:you'?d|you\s+would|would\s+you|do\s+you)\s+recommend|\brecommended\s+(?:books?|papers?|articles?)\b",
    re.IGNORECASE,
)
_READING_LIST = re.compile(  # the last heading of a section's path
    r"(?:^|>)\s*(?:want\s+to\s+(?:know|learn|read)\s+more|further\s+reading|read\s+more|learn\s+more"
    r"|recommended\s+reading|reading\s+list|references|see\s+also|bibliography)\W*$",
    re.IGNORECASE,
)


_REFERS_BACK = re.compile(
    r"^\W*(and|but|also|so|then|or|what about|how about)\b"
    # Not "this" or "these": "this weekend", "these layers" name their own topic.
    r"|\b(it|its|it's|that|those|they|them|their|theirs|one|ones|same|former|latter)\b",
    re.IGNORECASE,
)
# Openings, at the start after a word of reply at most ("ok, different topic: ..."), and only
# before a separator: "What new things does RLHF add?" has no opening. A hyphen separates only
# with a space beside it ("New question-answering models: ..." has no opening).
_REPLY = r"^\W*(?:(?:ok|okay|right|thanks|cool|alright|so|totally|completely)\W+)?"
_SEPARATOR = r"(?=\s*(?:[:,.;!?–—…]|but\b)|\s*-\s|\s+-)"
_END_OF_OPENING = r"(?=\s*[:.;!?–—…]|\s*-\s|\s+-)"  # no comma: "something else, like RLHF, ..." is no opening
_SUBJECT_CHANGE = re.compile(
    _REPLY + r"(?:(?:(?:switching|changing|change of|shifting|different|separate|unrelated|another|new)\s+"
    r"(?:the\s+)?(?:topics?|subjects?)"
    r"|(?:switching|changing|shifting)\s+(?:gears|tack|tracks)"
    r"|(?:different|separate|unrelated)\s+(?:things?|questions?)"
    r"|unrelated|moving on|on (?:another|a different|a separate|an unrelated) note)\b"
    + _SEPARATOR
    + r"|something else\b"
    + _END_OF_OPENING
    + ")",
    re.IGNORECASE,
)
_NEW_QUESTION = re.compile(  # says a question follows, not that its subject changes
    _REPLY + r"(?:new|another|one more|(?:a )?quick)\s+(?:questions?|things?|one)\b" + _SEPARATOR,
    re.IGNORECASE,
)
_LEFT_OVER_OPENING = re.compile(r"^[\W_]*(?:(?:but|and|so)\b)?[\W_]*", re.IGNORECASE)
_IT_DEPARTMENT = re.compile(r"\bIT\b")
_FIRST_SENTENCE = re.compile(r".+?(?:[.!?](?=\s)|$)", re.DOTALL)


@dataclass(frozen=True, eq=False)  # one object a chunk: compared by identity
class _Chunk:
    """A chunk as the store holds it."""

    id: str
    text: str
    meta: dict[str, Any]
    vector: np.ndarray | None = None

    @property
    def words(self) -> list[str]:
        return chunk_words(str(self.meta["guide"]), str(self.meta["section"]), self.text)

    def neighbour_id(self, step: int) -> str:
        """Chunk ids are `<file hash>-<position>` (tutor.index.chunk_guide): the next one is known."""
        prefix, _, position = self.id.rpartition("-")
        return f"{prefix}-{int(position) + step:04d}"


CARDS_SEARCHED = 5  # the guides' cards a question about a guide brings in with the chunks
SENTENCE_CACHE_CHUNKS = 10_000  # sentence vectors kept for this many chunk texts (about 60 MB)


class Retriever:
    """Hybrid search over the current index version; reloads when a new version is published.

    Nothing of the index is held in memory: Chroma ranks the vectors (on the server when there
    is one) and hands back the texts of the candidates, SQLite's FTS5 finds those with the
    question's words, and only the candidates are scored. bench_scale, 100,000 chunks: the
    earlier copy of every vector, text and BM25 table in each replica took minutes to load.
    """

    def __init__(
        self, store: Store, *, embedder: Embedder, lexical_weight: float = 0.4, sentence_weight: float = 0.0
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.lexical_weight = lexical_weight
        self.sentence_weight = sentence_weight
        self._sentence_vectors: dict[str, np.ndarray] = {}  # a chunk's text -> its sentences' vectors
        self._lock = threading.Lock()  # searches come from several request threads
        self._opened: OpenedVersion = store.open_version()
        self._passed_over = ""  # a newer version this replica does not switch to (another embedder's)
        self._speller: tuple[str, Speller] = ("", Speller(Counter()))  # the version it knows the words of

    @property
    def corpus_version(self) -> str:
        return str(self._opened.manifest["corpus_version"])

    @property
    def chunk_count(self) -> int:
        return int(self._opened.manifest["chunks"])

    @property
    def collection(self) -> Any:
        """The Chroma collection of the version searched now (bench_core queries it raw, as a baseline)."""
        return self._opened.collection

    def refresh(self) -> None:
        """Switch to the newest published index version, if there is one, unless its vectors are
        another embedding model's and the version searched now is this one's: a replica not yet
        upgraded keeps serving what it can compare (a rolling upgrade rebuilds the shared index)."""
        if self.store.current_version() in (self._opened.name, self._passed_over):
            return
        old, newest = self._opened, self.store.open_version()
        if embedded_by(newest.manifest) != self.embedder.model_id == embedded_by(old.manifest):
            old, self._passed_over = newest, newest.name
        else:
            self._opened = newest
        old.words.close()
        if old.client is not self._opened.client:  # a server store keeps one client
            old.client.close()

    def corrected(self, text: str) -> str:
        """The text with its typing slips corrected towards the words of the guides searched
        (`tutor.spelling`)."""
        return self._current_speller().corrected(text)

    def _current_speller(self) -> Speller:
        """The speller of the version searched now. Not refreshed here: `search` does that, and on
        a Chroma server each refresh is a request."""
        with self._lock:
            if self._speller[0] != self._opened.name:
                try:
                    self._speller = (self._opened.name, Speller(self._opened.words.spellings()))
                except Exception as exc:  # a word index deleted under us, as in search
                    raise IndexMissingError(f"the index cannot be searched now ({exc})") from None
            return self._speller[1]

    def search(self, query: str, limit: int = 8) -> list[Passage]:
        """The best `limit` passages for the query, best first.

        Chroma ranks by cosine similarity; BM25 adds exact-word evidence that MiniLM misses. A
        weighted sum of the two beat reciprocal-rank fusion on the eval sets (hit@3 0.90 vs 0.80).
        Candidates are the best `fetch` of each; each is then scored by both. Initialisms are
        searched with their words (`with_initialisms_spelled_out`).
        """
        searched = with_initialisms_spelled_out(query)
        query_vector = np.asarray(self.embedder.embed_one(searched), dtype=np.float32)
        terms = lexical_tokens(searched)
        with self._lock:
            try:
                self.refresh()
                if not self.chunk_count:
                    return []
                fetch = min(self.chunk_count, max(4 * limit, 20))
                candidates = self._nearest(query_vector, fetch, TEXT)
                if self.lexical_weight:
                    known = {c.id for c in candidates}
                    more = [i for i in self._opened.words.search(terms, fetch) if i not in known]
                    candidates += self._get(more, vectors=True)
                if asks_about_a_guide(query):
                    candidates += self._nearest(query_vector, CARDS_SEARCHED, ABOUT)
                stored = self._opened.words.words([c.id for c in candidates])
                words = [stored.get(c.id) or c.words for c in candidates]
                lexical = self._opened.words.scores(terms, words) if self.lexical_weight else []
            except IndexMissingError:
                raise
            except Exception as exc:  # a Chroma server that went away, a store deleted under us
                raise IndexMissingError(f"the index cannot be searched now ({exc})") from None
        reading = asks_for_further_reading(query)
        return self._rank(lexical_tokens(query), query_vector, candidates, words, lexical, limit, reading=reading)

    def _nearest(self, query_vector: np.ndarray, count: int, kind: str) -> list[_Chunk]:
        """The `count` chunks of `kind` nearest the query. Text is asked for twice over, without a
        filter, and the cards dropped: a filter that nearly every chunk passes made Chroma read the
        metadata of every chunk, 35 to 50 times slower at 100,000 chunks. Cards are few: the
        filter is cheap for them."""
        found = self._opened.collection.query(
            query_embeddings=[query_vector.tolist()],
            n_results=min(2 * count, self.chunk_count) if kind == TEXT else count,
            where=None if kind == TEXT else {"kind": kind},
            include=["documents", "metadatas", "embeddings"],
        )
        chunks = _chunks(found["ids"][0], found["documents"][0], found["metadatas"][0], found["embeddings"][0])
        return [c for c in chunks if kind_of(c.meta) == kind][:count]

    def _get(self, ids: list[str], *, vectors: bool = False) -> list[_Chunk]:
        if not ids:
            return []
        include = ["documents", "metadatas", "embeddings"] if vectors else ["documents", "metadatas"]
        got = self._opened.collection.get(ids=ids, include=include)
        return _chunks(got["ids"], got["documents"], got["metadatas"], got["embeddings"] if vectors else None)

    def _rank(
        self,
        asked: list[str],
        query_vector: np.ndarray,
        candidates: list[_Chunk],
        words: list[list[str]],
        lexical: list[float],
        limit: int,
        *,
        reading: bool = False,
    ) -> list[Passage]:
        similarity = np.asarray([float(c.vector @ query_vector) for c in candidates])  # type: ignore[operator]
        relative = np.asarray(lexical) if lexical else np.zeros(len(candidates))
        if relative.size and relative.max() > 0:
            relative = relative / relative.max()  # the best candidate is the best chunk: FTS5 brought it in
        combined = similarity + self.lexical_weight * relative
        named = _named(candidates, asked, similarity, reading=reading)
        ranked = sorted(range(len(candidates)), key=lambda i: -combined[i])
        if self.sentence_weight and candidates:
            # The leaders are scored again with their best sentence, and only they can be returned:
            # a chunk's sentences are embedded the first time it is a leader, not for every candidate.
            leaders = max(2 * limit, 16)
            ranked = ranked[:leaders] + [i for i in ranked[leaders:] if i in named]  # a named card is kept
            best = self._best_sentence_similarity([candidates[i] for i in ranked], query_vector)
            combined[ranked] += self.sentence_weight * (best - similarity[ranked])
            ranked.sort(key=lambda i: -combined[i])
        ranked.sort(key=lambda i: -named.get(i, 0))  # what the question names first, as in best_first
        wanted = set(asked)  # the question's own words, not those its initialisms stand for
        return [
            Passage(
                id=candidates[i].id,
                text=candidates[i].text,
                guide=str(candidates[i].meta["guide"]),
                path=str(candidates[i].meta["path"]),
                section=str(candidates[i].meta["section"]),
                position=int(candidates[i].meta["position"]),
                score=round(max(float(similarity[i]), 0.0), 4),
                lexical=round(float(relative[i]), 4),
                rank_score=round(float(combined[i]), 4),
                has_all_terms=bool(wanted) and wanted <= set(words[i]),
                embedding=tuple(float(x) for x in candidates[i].vector),  # type: ignore[union-attr]
                named=named.get(i, 0),
            )
            for i in ranked[:limit]
        ]

    def _best_sentence_similarity(self, candidates: list[_Chunk], query_vector: np.ndarray) -> np.ndarray:
        """Each candidate's best cosine between one of its sentences and the query.

        A 400-character chunk's vector blurs the one sentence that answers: "Why it matters:
        Understanding these layers is crucial for making informed decisions …" sat in a chunk of
        the five layers' list, and ranked 4th for "why would I need to understand these layers?"."""
        cache = self._sentence_vectors_of([c.text for c in candidates])
        return np.asarray([float((cache[c.text] @ query_vector).max()) for c in candidates])

    def _sentence_vectors_of(self, texts: list[str]) -> dict[str, np.ndarray]:
        """The cache, holding the sentence vectors of these chunk texts (made for those it lacks;
        bounded: the texts of a large index do not all stay)."""
        missing = list(dict.fromkeys(text for text in texts if text not in self._sentence_vectors))
        if missing:
            split = [[s for s in split_sentences(text) if len(s.split()) >= 3] or [text] for text in missing]
            vectors = np.asarray(self.embedder.embed([s for sentences in split for s in sentences]), dtype=np.float32)
            if len(self._sentence_vectors) + len(missing) > SENTENCE_CACHE_CHUNKS:
                self._sentence_vectors = {}
            start = 0
            for text, sentences in zip(missing, split, strict=True):
                self._sentence_vectors[text] = vectors[start : start + len(sentences)]
                start += len(sentences)
        return self._sentence_vectors

    def warm_up(self, max_chunks: int = 500) -> None:
        """Make the sentence vectors of the first `max_chunks` chunks now (all of a small corpus,
        in about a second), and read the speller's dictionary, so that the first questions asked
        do not wait for them."""
        self._current_speller().warm_up()
        if self.sentence_weight:
            with self._lock:
                texts = self._opened.collection.get(limit=max_chunks, include=["documents"])["documents"]
            self._sentence_vectors_of(list(texts or []))

    def widen(
        self, chosen: Sequence[Passage], *, token_budget: int, count_tokens: Callable[[str], int]
    ) -> list[Passage]:
        """The chosen passages, those that touch joined, the best one widened by its neighbours
        in the same section and any other cut inside a list by the chunk after it, while the budget
        lasts.

        A chunk is a cut of 400 characters, and the answer often runs on past the cut (the fifth
        of five listed layers). Chosen chunks that touch become one passage, read in order under
        one number; then the best passage takes the chunk after it and the one before it if the
        rest of the budget allows. Widening every passage lifted the dev set's fact recall more
        (0.71 -> 0.94) but lowered the own set's (0.80 -> 0.78) and pushed first token past 1.5 s:
        the 0.5B model loses its way in three long passages. A passage cut inside a list takes the
        chunk that goes on with it too, budget allowing (`_runs`).
        """
        if not chosen:
            return []
        with self._lock:
            ids = [p.id for p in chosen]
            around = [_Chunk(i, "", {}).neighbour_id(step) for i in ids for step in (-1, 1)]
            try:
                near = {c.id: c for c in self._get(list(dict.fromkeys(ids + around)))}
            except Exception:  # the version went away: the passages as they are
                return list(chosen)
        if any(i not in near for i in ids):  # a newer version came in
            return list(chosen)
        runs = _runs(chosen, near, token_budget, count_tokens)
        passages = []
        for run, leader in runs:
            if len(run) == 1:
                passages.append(leader)
                continue
            first, text = run[0], _joined(run)
            # No vector: the joined text is embedded only where a sentence's support is scored.
            passages.append(
                replace(
                    leader,
                    id="+".join(c.id for c in run),
                    text=text,
                    position=int(first.meta["position"]),
                    embedding=(),
                )
            )
        return passages

    def chunks(self) -> list[tuple[dict[str, Any], str]]:
        """Every chunk of the current version as (metadata, text), a page at a time: the guides
        as indexed, for the MCP server's resources and warm_up, which read them without any file."""
        with self._lock:
            self.refresh()
            collection, found = self._opened.collection, []
            for offset in range(0, collection.count(), 1000):
                page = collection.get(include=["documents", "metadatas"], limit=1000, offset=offset)
                found += [(dict(m), t) for m, t in zip(page["metadatas"], page["documents"], strict=True)]
            return found

    def close(self) -> None:
        self._opened.words.close()
        self._opened.client.close()


def _named(candidates: list[_Chunk], asked: list[str], similarity: np.ndarray, *, reading: bool) -> dict[int, int]:
    """What the question names, to be ranked first (`Passage.named`): the reading list it asks for,
    then the card of the guide it asks about (cards are candidates only then).

    The card is the one whose title line and author hold most of the question's words ("the
    Trooster chapter"), then the nearest: ranked with the chunks, a card lost to them ("who's the 5
    layers doc meant for?" got two chunks on the layers), and by cosine alone the glossary's card
    came before the five layers guide's. The reading list is the nearest ("Want to know more?"
    shares no word with "any further reading?")."""
    wanted = set(asked)

    def naming(i: int) -> tuple[int, float]:
        return len(wanted & set(lexical_tokens(card_name(candidates[i].text)))), float(similarity[i])

    cards = [i for i, c in enumerate(candidates) if kind_of(c.meta) == ABOUT]
    lists = [i for i, c in enumerate(candidates) if is_reading_list(str(c.meta["section"]))] if reading else []
    card = {max(cards, key=naming): 1} if cards else {}
    return card | ({max(lists, key=lambda i: similarity[i]): 2} if lists else {})


def _chunks(ids: Sequence[str], texts: Sequence[str], metas: Sequence[Any], vectors: Any) -> list[_Chunk]:
    return [
        _Chunk(
            chunk_id,
            text,
            dict(meta),
            None if vectors is None else np.asarray(vectors[i], dtype=np.float32),
        )
        for i, (chunk_id, text, meta) in enumerate(zip(ids, texts, metas, strict=True))
    ]


def _runs(
    chosen: Sequence[Passage], near: dict[str, _Chunk], token_budget: int, count_tokens: Callable[[str], int]
) -> list[tuple[list[_Chunk], Passage]]:
    """Chunks of one section in order, each run with the best chosen passage in it; the first
    run holds the best passage, and takes its neighbours while the budget lasts, then any other
    run cut inside a list takes the chunk after it."""

    def neighbour(chunk: _Chunk, step: int) -> _Chunk | None:
        other = near.get(chunk.neighbour_id(step))
        place = (chunk.meta["section"], kind_of(chunk.meta))
        return other if other is not None and (other.meta["section"], kind_of(other.meta)) == place else None

    runs: list[tuple[list[_Chunk], Passage]] = []
    for passage in chosen:
        chunk = near[passage.id]
        touching = next((run for run, _ in runs if chunk in (neighbour(run[0], -1), neighbour(run[-1], 1))), None)
        if touching is None:
            runs.append(([chunk], passage))
        elif chunk == neighbour(touching[0], -1):
            touching.insert(0, chunk)
        else:
            touching.append(chunk)
    used = sum(count_tokens(_joined(run)) for run, _ in runs)

    def take(run: list[_Chunk], step: int) -> None:
        """The run takes its neighbour after it (step 1) or before it (-1), if no run has it and
        the budget allows."""
        nonlocal used
        extra = neighbour(run[-1] if step == 1 else run[0], step)
        if extra is None or any(extra in other for other, _ in runs):
            return
        widened = [*run, extra] if step == 1 else [extra, *run]
        cost = count_tokens(_joined(widened)) - count_tokens(_joined(run))
        if used + cost <= token_budget:
            run[:] = widened
            used += cost

    for step in (1, -1):
        take(runs[0][0], step)
    # A run cut inside a list takes the chunk that goes on with it: "five distinct layers:" cut
    # after the fourth left RAG out of an answer listing them.
    for run, _ in runs[1:]:
        following = neighbour(run[-1], 1)
        if following is not None and _cut_inside_a_list(run[-1].text, following.text):
            take(run, 1)
    return runs


def _cut_inside_a_list(text: str, following: str) -> bool:
    """The text ends on a list item and the text after it starts with one."""
    last = text.rstrip().rsplit("\n", 1)[-1]
    first = following.lstrip().split("\n", 1)[0]
    return bool(LIST_ITEM.match(last) and LIST_ITEM.match(first))


def _joined(run: list[_Chunk]) -> str:
    text = run[0].text
    for chunk in run[1:]:
        text = join_overlapping(text, chunk.text)
    return text


def join_overlapping(first: str, second: str) -> str:
    """Two neighbouring chunks as one text: the splitter repeats the end of one at the start of
    the next (chunk_overlap), and the repeat is said once."""
    for size in range(min(len(first), len(second)), 9, -1):
        if first.endswith(second[:size]):
            return first + second[size:]
    return f"{first}\n{second}"


def select_for_prompt(
    passages: Sequence[Passage],
    *,
    k: int,
    min_score: float,
    margin: float,
    token_budget: int,
    count_tokens: Callable[[str], int],
) -> list[Passage]:
    """The passages worth their prefill time: near the best, within a token budget; none when
    the question is outside the guides.

    The question is covered when some passage is similar enough to it or contains all its
    words (MiniLM does not know acronyms such as RLHF, which the glossary defines). Once it is,
    the hybrid rank decides: a vector-score floor on each passage dropped the best-ranked one
    when its evidence was lexical (the dev set's "base models have limitations").
    """
    if not is_covered(passages, min_score):
        return []
    top = max(p.rank_score for p in passages)
    chosen: list[Passage] = []
    used = 0
    for passage in passages:
        if len(chosen) == k or passage.rank_score < top - margin and not passage.named:
            continue
        cost = count_tokens(passage.text)
        if chosen and used + cost > token_budget:
            continue
        chosen.append(passage)
        used += cost
    return chosen
