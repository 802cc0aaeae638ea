"""Search the index: Chroma's vector ranking fused with BM25, and passages chosen for the prompt."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .embed import Embedder
from .errors import IndexMissingError
from .index import Store, text_to_embed
from .markers import CITATION_MARKERS, NOT_COVERED_SAID

_STOPWORDS = frozenset(
    "a an and are as at be by can do does for from how i in is it its of on or so that the their "  # noqa: SIM905
    "them then there these they this to was we what when which who why will with you your".split()
)


_per_thread = threading.local()


def _stemmer() -> Any:
    """One stemmer a thread: a snowball stemmer keeps the word it works on in itself, and two
    threads sharing one broke each other's words (an IndexError under load)."""
    stemmer = getattr(_per_thread, "stemmer", None)
    if stemmer is None:
        import snowballstemmer

        stemmer = _per_thread.stemmer = snowballstemmer.stemmer("english")
    return stemmer


def lexical_tokens(text: str) -> list[str]:
    """Stemmed lower-case words for BM25; "pre-training" matches "pretraining", and
    "backpropagation" matches "Backpropagates"."""
    words = re.findall(r"[a-z0-9]+", text.lower().replace("-", ""))
    return list(_stemmer().stemWords([w for w in words if w not in _STOPWORDS]))


@dataclass(frozen=True)
class Passage:
    """A retrieved chunk, with how well it matches the question."""

    id: str
    text: str
    guide: str
    path: str
    section: str
    position: int
    score: float  # cosine similarity of question and passage, 0..1: decides relevance
    lexical: float = 0.0  # BM25 score relative to the best one for this query, 0..1
    rank_score: float = 0.0  # what the passages are ordered by: score + lexical_weight * lexical
    has_all_terms: bool = False  # the passage contains every word of the query (stemmed, no stopwords)
    planted: tuple[str, ...] = ()  # sentences that read as instructions to the model (tutor.injection)
    embedding: tuple[float, ...] = field(default=(), repr=False, compare=False)


Turn = tuple[str, str]


def standalone_query(question: str, history: Sequence[Turn]) -> str:
    """The search query for a follow-up: the last question, the first sentence of its answer, and
    this question.

    A follow-up such as "How long does it take?" has no topic of its own; the previous turn
    supplies it. The answer's first sentence carries the guides' own words ("creates the
    foundational model"), which the question alone lacks: with it, the passage that answers
    "What is pre-training? How long does it take?" ranked 3rd instead of 10th. This costs no
    model call, which matters when prefill is the bottleneck.
    """
    if not history:
        return question
    asked, answered = history[-1]
    first = _FIRST_SENTENCE.match(CITATION_MARKERS.sub("", answered).strip())
    said = first.group(0)[:300] if first and not NOT_COVERED_SAID.search(first.group(0)) else ""
    return " ".join(part for part in (asked, said, question) if part)


def refers_back(question: str) -> bool:
    """The question leans on the conversation: a pronoun ("how long does it take?"), an opening
    "and"/"what about", or too few words of its own to have a topic ("How long?")."""
    return bool(_REFERS_BACK.search(question)) or len(set(lexical_tokens(question))) <= 2


def is_covered(passages: Sequence[Passage], min_score: float) -> bool:
    """Some passage is similar enough to the query, or holds every word of it (MiniLM does not
    know acronyms such as RLHF, which the glossary defines)."""
    return any(p.score >= min_score or p.has_all_terms for p in passages)


_REFERS_BACK = re.compile(
    r"^\W*(and|but|also|so|then|or|what about|how about)\b"
    # Not "this" or "these": "this weekend", "these layers" name their own topic.
    r"|\b(it|its|it's|that|those|they|them|their|theirs|one|ones|same|former|latter)\b",
    re.IGNORECASE,
)
_FIRST_SENTENCE = re.compile(r".+?(?:[.!?](?=\s)|$)", re.DOTALL)


class Retriever:
    """Hybrid search over the current index version; reloads when a new version is published."""

    def __init__(self, store: Store, *, embedder: Embedder, lexical_weight: float = 0.4) -> None:
        self.store = store
        self.embedder = embedder
        self.lexical_weight = lexical_weight
        self._version: str | None = None
        self._lock = threading.Lock()  # searches come from several request threads
        self._load()

    def _load(self) -> None:
        client, collection, manifest = self.store.open_collection()
        data = collection.get(include=["documents", "metadatas", "embeddings"])
        self._client, self._collection = client, collection
        self.corpus_version: str = manifest["corpus_version"]
        self.chunk_count = len(data["ids"])
        self._ids: list[str] = list(data["ids"])
        self._texts: list[str] = list(data["documents"] or [])
        self._metas: list[dict[str, Any]] = [dict(m) for m in data["metadatas"] or []]
        self._vectors = np.asarray(data["embeddings"], dtype=np.float32).reshape(self.chunk_count, -1)
        self._row = {chunk_id: row for row, chunk_id in enumerate(self._ids)}
        self._at = {(m["path"], int(m["position"])): row for row, m in enumerate(self._metas)}
        from rank_bm25 import BM25Okapi

        documents = [
            lexical_tokens(f"{m['guide']} {m['section']} {t}") for m, t in zip(self._metas, self._texts, strict=True)
        ]
        self._bm25 = BM25Okapi(documents) if documents else None
        self._terms = [set(document) for document in documents]
        self._version = self.store.current_version()

    def refresh(self) -> None:
        """Switch to the newest published index version, if there is one."""
        if self.store.current_version() != self._version:
            old = self._client
            self._load()
            if old is not self._client:  # a server store keeps one client
                old.close()

    def search(self, query: str, limit: int = 8) -> list[Passage]:
        """The best `limit` passages for the query, best first.

        Chroma ranks by cosine similarity; BM25 adds exact-word evidence that MiniLM misses. A
        weighted sum of the two beat reciprocal-rank fusion on the eval sets (hit@3 0.90 vs 0.80).
        """
        query_vector = np.asarray(self.embedder.embed_one(query), dtype=np.float32)
        with self._lock:
            try:
                self.refresh()
                if not self.chunk_count:
                    return []
                fetch = min(self.chunk_count, max(4 * limit, 20))
                found = self._collection.query(query_embeddings=[query_vector.tolist()], n_results=fetch, include=[])
            except IndexMissingError:
                raise
            except Exception as exc:  # a Chroma server that went away, a store deleted under us
                raise IndexMissingError(f"the index cannot be searched now ({exc})") from None
            return self._rank(query, query_vector, found["ids"][0], limit, fetch)

    def _rank(
        self, query: str, query_vector: np.ndarray, found_ids: list[str], limit: int, fetch: int
    ) -> list[Passage]:
        candidates = {self._row[chunk_id] for chunk_id in found_ids}
        similarity = self._vectors @ query_vector
        lexical = np.zeros(self.chunk_count)
        if self.lexical_weight and self._bm25 is not None:
            raw = np.asarray(self._bm25.get_scores(lexical_tokens(query)))
            if raw.max() > 0:
                lexical = raw / raw.max()
                candidates.update(int(row) for row in np.argsort(-raw)[:fetch] if raw[row] > 0)
        combined = similarity + self.lexical_weight * lexical
        best = sorted(candidates, key=lambda row: -combined[row])[:limit]
        terms = set(lexical_tokens(query))
        return [
            self._passage(row, float(similarity[row]), float(lexical[row]), float(combined[row]), terms) for row in best
        ]

    def _passage(self, row: int, score: float, lexical: float, rank_score: float, terms: set[str]) -> Passage:
        meta = self._metas[row]
        return Passage(
            id=self._ids[row],
            text=self._texts[row],
            guide=str(meta["guide"]),
            path=str(meta["path"]),
            section=str(meta["section"]),
            position=int(meta["position"]),
            score=round(max(score, 0.0), 4),
            lexical=round(lexical, 4),
            rank_score=round(rank_score, 4),
            has_all_terms=bool(terms) and terms <= self._terms[row],
            embedding=tuple(float(x) for x in self._vectors[row]),
        )

    def widen(
        self, chosen: Sequence[Passage], *, token_budget: int, count_tokens: Callable[[str], int]
    ) -> list[Passage]:
        """The chosen passages, those that touch joined, and the best one widened by its
        neighbours in the same section while the budget lasts.

        A chunk is a cut of 400 characters, and the answer often runs on past the cut (the fifth
        of five listed layers). Chosen chunks that touch become one passage, read in order under
        one number; then the best passage takes the chunk after it and the one before it if the
        rest of the budget allows. Widening every passage lifted the dev set's fact recall more
        (0.71 -> 0.94) but lowered the own set's (0.80 -> 0.78) and pushed first token past 1.5 s:
        the 0.5B model loses its way in three long passages.
        """
        with self._lock:
            if not chosen or any(passage.id not in self._row for passage in chosen):  # none, or a newer version came in
                return list(chosen)
            runs = self._runs(chosen, token_budget, count_tokens)
            joined = [(self._joined(run), "+".join(self._ids[r] for r in run), self._metas[run[0]]) for run, _ in runs]
        # Embedded outside the lock: other questions' searches need not wait for it.
        passages = []
        for (run, leader), (text, ids, first) in zip(runs, joined, strict=True):
            if len(run) == 1:
                passages.append(leader)
                continue
            vector = self.embedder.embed_one(text_to_embed(first["guide"], first["section"], text))
            passages.append(
                replace(leader, id=ids, text=text, position=int(first["position"]), embedding=tuple(vector))
            )
        return passages

    def _runs(
        self, chosen: Sequence[Passage], token_budget: int, count_tokens: Callable[[str], int]
    ) -> list[tuple[list[int], Passage]]:
        """Rows of one section in order, each with the best chosen passage in it; the first holds the best."""
        runs: list[tuple[list[int], Passage]] = []
        for passage in chosen:
            row = self._row[passage.id]
            touching = next((run for run, _ in runs if self._next_to(run, row)), None)
            if touching is None:
                runs.append(([row], passage))
            elif row == self._neighbour(touching[0], -1):
                touching.insert(0, row)
            else:
                touching.append(row)
        used = sum(count_tokens(self._joined(run)) for run, _ in runs)
        top = runs[0][0]
        for step in (1, -1):
            neighbour = self._neighbour(top[-1] if step == 1 else top[0], step)
            if neighbour is None or any(neighbour in run for run, _ in runs):
                continue
            widened = [*top, neighbour] if step == 1 else [neighbour, *top]
            cost = count_tokens(self._joined(widened)) - count_tokens(self._joined(top))
            if used + cost <= token_budget:
                top[:] = widened
                used += cost
        return runs

    def _neighbour(self, row: int, step: int) -> int | None:
        meta = self._metas[row]
        other = self._at.get((meta["path"], int(meta["position"]) + step))
        if other is None or self._metas[other]["section"] != meta["section"]:
            return None
        return other

    def _next_to(self, run: list[int], row: int) -> bool:
        return row in (self._neighbour(run[0], -1), self._neighbour(run[-1], 1))

    def _joined(self, run: list[int]) -> str:
        text = self._texts[run[0]]
        for row in run[1:]:
            text = join_overlapping(text, self._texts[row])
        return text

    def chunks(self) -> list[tuple[dict[str, Any], str]]:
        """Every chunk of the current version as (metadata, text): the guides as indexed, for the
        MCP server's resources, which show them without reading any file."""
        with self._lock:
            self.refresh()
            return list(zip(self._metas, self._texts, strict=True))

    def close(self) -> None:
        self._client.close()


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
        if len(chosen) == k or passage.rank_score < top - margin:
            continue
        cost = count_tokens(passage.text)
        if chosen and used + cost > token_budget:
            continue
        chosen.append(passage)
        used += cost
    return chosen
