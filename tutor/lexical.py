"""Word search over the chunks: an SQLite FTS5 table on disk beside the vectors, scored as BM25.

Chroma ranks by vectors; exact words (acronyms, "backpropagation") need a word index. Chroma
1.5's own sparse BM25 index is refused by the local store ("Sparse vector indexing is not
enabled in local"), so the words live in SQLite's FTS5, which every Python has: a replica reads
from disk what a question needs, instead of holding every text (bench_scale: at 100,000 chunks
the in-memory BM25 took minutes to load and most of a gigabyte).

FTS5 finds the candidates; they are then scored with Okapi BM25 as rank_bm25 scores it (k1 1.5,
b 0.75, a term in more than half of the chunks weighted by a quarter of the mean idf), the
formula the ranking's weights were tuned with. FTS5's own bm25() uses k1 1.2 and gives such
common words no weight at all, which moved 44-chunk rankings.
"""

from __future__ import annotations

import math
import os
import re
import sqlite3
import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

K1 = 1.5
B = 0.75
EPSILON = 0.25

_STOPWORDS = frozenset(
    "a an and are as at be by can do does for from how i in is it its of on or so that the their "  # noqa: SIM905
    "them then there these they this to was we what when which who why will with you your".split()
)
_per_thread = threading.local()


def _stemmer() -> Any:
    """One Snowball English stemmer a thread (PyStemmer, the C one: 0.4 µs a word where the pure
    Python snowballstemmer took 42, a tenth of an ingest's time). A stemmer keeps the word it
    works on in itself, and two threads sharing one broke each other's words under load."""
    stemmer = getattr(_per_thread, "stemmer", None)
    if stemmer is None:
        import Stemmer

        stemmer = _per_thread.stemmer = Stemmer.Stemmer("english")
    return stemmer


# British endings written the American way before stemming, on both sides of a search: the guides
# write "specialisation" and "behaviour", staff type "optimisation" or "optimization".
_BRITISH = (
    (re.compile(r"is(ation|ations|e|ed|es|er|ers|ing)$"), r"iz\1"),
    (re.compile(r"ys(e|ed|es|ing)$"), r"yz\1"),
    (re.compile(r"(?<=[iblvnm])our(s|ed|ing)?$"), r"or\1"),
)


def american_spelling(word: str) -> str:
    for ending, american in _BRITISH:
        word = ending.sub(american, word)
    return word


# Training methods that staff name by their initials. The embedder reads "rlhf??" as nothing in
# particular (cosine 0.10 to its passage), and the guides name only RLHF (once, in a glossary line)
# and RAG: they describe the rest in words (instruction fine-tuning, preference optimization). A
# question's initialisms are searched with those words beside them; the model reads it as typed.
INITIALISMS = {
    "rlhf": "reinforcement learning from human feedback",
    "rlaif": "reinforcement learning from AI feedback",
    "sft": "supervised fine-tuning",
    "dpo": "direct preference optimization",
    "ppo": "proximal policy optimization",
    "lora": "low rank adaptation, a way of fine-tuning",
    "peft": "parameter efficient fine-tuning",
    "rag": "retrieval augmented generation",
}
_INITIALISM = re.compile(r"\b(" + "|".join(INITIALISMS) + r")s?\b", re.IGNORECASE)


def with_initialisms_spelled_out(query: str) -> str:
    """The query with its initialisms' words beside the first mention of each: "rlhf vs sft?"
    searches as "rlhf (reinforcement learning from human feedback) vs sft (supervised
    fine-tuning)?". Beside, not at the end, so that a long query cut to the embedder's length keeps them."""
    seen: set[str] = set()

    def spelled_out(found: re.Match[str]) -> str:
        key = found.group(1).lower()
        if key in seen:
            return found.group(0)
        seen.add(key)
        return f"{found.group(0)} ({INITIALISMS[key]})"

    return _INITIALISM.sub(spelled_out, query)


# "fine tuning", "fine-tuning" and "finetuning" are one word, as are "pre training" and "pretraining".
_JOINED_PREFIX = re.compile(r"\b(pre|post|fine|multi|non|self|sub|co) +(?=[a-z])")


def lexical_tokens(text: str) -> list[str]:
    """Stemmed lower-case words for BM25; "pre-training" matches "pre training" and "pretraining",
    "backpropagation" matches "Backpropagates" and "optimisation" matches "optimization"."""
    words = re.findall(r"[a-z0-9]+", _JOINED_PREFIX.sub(r"\1", text.lower().replace("-", "")))
    return list(_stemmer().stemWords([american_spelling(w) for w in words if w not in _STOPWORDS]))


def chunk_words(guide: str, section: str, text: str) -> list[str]:
    """The words a chunk is found by: its guide's title and section travel with its text."""
    return lexical_tokens(f"{guide} {section} {text}")


_WRITTEN = re.compile(r"[A-Za-z]+")
_HYPHENATED = re.compile(r"[A-Za-z]+(?:-[A-Za-z]+)+")


def guide_words(text: str) -> list[str]:
    """The words of a guide's text as a speller knows them: lower case, and a hyphenated word
    also joined ("pre-training" gives "pre", "training" and "pretraining")."""
    words = [w.lower() for w in _WRITTEN.findall(text)]
    return words + [w.lower().replace("-", "") for w in _HYPHENATED.findall(text)]


_SCHEMA = """
CREATE VIRTUAL TABLE IF NOT EXISTS chunks USING fts5(words, length UNINDEXED);
CREATE VIRTUAL TABLE IF NOT EXISTS terms USING fts5vocab(chunks, row);
CREATE TABLE IF NOT EXISTS chunk_rows (row INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, path TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS chunk_rows_by_path ON chunk_rows (path);
CREATE TABLE IF NOT EXISTS statistics (name TEXT PRIMARY KEY, value REAL NOT NULL);
CREATE TABLE IF NOT EXISTS spellings (
    path TEXT NOT NULL, word TEXT NOT NULL, count INTEGER NOT NULL, PRIMARY KEY (path, word)
);
"""


class LexicalIndex:
    """The word index of one index version (a file); written by an ingest, read by replicas.

    `chunks` holds each chunk's stemmed words (FTS5), `chunk_rows` maps its row to the chunk id
    and guide path, `statistics` the figures BM25 needs, computed once when the ingest finishes,
    and `spellings` each guide's words as written, for correcting a question's slips
    (`tutor.spelling`).
    """

    def __init__(self, path: Path, *, writable: bool = False) -> None:
        self.path = path
        if writable:
            self._db = sqlite3.connect(path, check_same_thread=False)
            self._db.executescript(_SCHEMA)
        else:
            if not path.is_file():
                raise FileNotFoundError(path)
            self._db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
        self._stats: tuple[int, float, float] | None = None

    # Writing (an ingest holds the only writer).

    def add(self, rows: Iterable[tuple[str, str, list[str]]]) -> None:
        """Rows of (chunk id, guide path, words)."""
        (last,) = self._db.execute("SELECT coalesce(max(row), 0) FROM chunk_rows").fetchone()
        numbered = [(last + n, chunk_id, path, words) for n, (chunk_id, path, words) in enumerate(rows, 1)]
        self._db.executemany(
            "INSERT INTO chunks (rowid, words, length) VALUES (?, ?, ?)",
            ((row, " ".join(words), len(words)) for row, _, _, words in numbered),
        )
        self._db.executemany(
            "INSERT INTO chunk_rows (row, id, path) VALUES (?, ?, ?)", ((r, i, p) for r, i, p, _ in numbered)
        )

    def add_spellings(self, rows: Iterable[tuple[str, list[str]]]) -> None:
        """Rows of (guide path, words as written): of every chunk, cards included, whose words
        (an author's name) the speller must know too, though BM25 leaves them out."""
        counts = Counter((path, word) for path, words in rows for word in words)
        self._db.executemany(
            "INSERT INTO spellings (path, word, count) VALUES (?, ?, ?) "
            "ON CONFLICT (path, word) DO UPDATE SET count = count + excluded.count",
            ((path, word, count) for (path, word), count in counts.items()),
        )

    def remove_paths(self, paths: Sequence[str]) -> None:
        for path in paths:
            self._db.execute("DELETE FROM chunks WHERE rowid IN (SELECT row FROM chunk_rows WHERE path = ?)", (path,))
            self._db.execute("DELETE FROM chunk_rows WHERE path = ?", (path,))
            self._db.execute("DELETE FROM spellings WHERE path = ?", (path,))

    def finish(self) -> None:
        """Merge FTS5's segments (reads then touch one b-tree), keep the statistics, commit."""
        self._db.execute("INSERT INTO chunks (chunks) VALUES ('optimize')")
        self._stats = None
        self._db.executemany(
            "INSERT OR REPLACE INTO statistics (name, value) VALUES (?, ?)",
            zip(("count", "mean_length", "mean_idf"), self._computed_statistics(), strict=True),
        )
        self._db.commit()

    # Reading.

    def search(self, terms: Sequence[str], limit: int) -> list[str]:
        """Ids of up to `limit` chunks holding any of the terms, FTS5's best first."""
        unique = sorted(set(terms))
        if not unique or limit <= 0:
            return []
        match = " OR ".join(f'"{term}"' for term in unique)  # terms are [a-z0-9]+: nothing to escape
        rows = [
            r
            for (r,) in self._db.execute(
                "SELECT rowid FROM chunks WHERE chunks MATCH ? ORDER BY rank LIMIT ?", (match, limit)
            )
        ]
        ids = dict(self._db.execute(f"SELECT row, id FROM chunk_rows WHERE row IN ({','.join('?' * len(rows))})", rows))
        return [ids[r] for r in rows if r in ids]

    def words(self, ids: Sequence[str]) -> dict[str, list[str]]:
        """The stored words of these chunks, as they were indexed: no text is stemmed again."""
        found: dict[str, list[str]] = {}
        for start in range(0, len(ids), 500):  # within SQLite's limit on bound values
            part = list(ids[start : start + 500])
            query = (
                "SELECT r.id, c.words FROM chunk_rows AS r JOIN chunks AS c ON c.rowid = r.row "
                f"WHERE r.id IN ({','.join('?' * len(part))})"
            )
            found.update((chunk_id, words.split()) for chunk_id, words in self._db.execute(query, part))
        return found

    def scores(self, terms: Sequence[str], documents: Sequence[Sequence[str]]) -> list[float]:
        """Okapi BM25 of each document's words for the query terms, with the whole index's
        statistics; a term asked twice counts twice, as in rank_bm25."""
        count, mean_length, mean_idf = self._statistics()
        idf = self._idf(set(terms), count, mean_idf)
        scores = []
        for words in documents:
            frequency = Counter(words)
            norm = K1 * (1 - B + B * len(words) / mean_length) if mean_length else K1
            scores.append(sum(idf[t] * frequency[t] * (K1 + 1) / (frequency[t] + norm) for t in terms if frequency[t]))
        return scores

    def spellings(self) -> Counter[str]:
        """How often each word occurs in the guides, as written; none in a version ingested
        before the words were kept."""
        try:
            return Counter(dict(self._db.execute("SELECT word, sum(count) FROM spellings GROUP BY word")))
        except sqlite3.OperationalError:  # no such table
            return Counter()

    @property
    def chunk_count(self) -> int:
        return self._statistics()[0]

    def _statistics(self) -> tuple[int, float, float]:
        """(chunks, mean words a chunk, mean idf over the vocabulary): fixed for a version, kept
        by `finish` (at 100,000 chunks reading the vocabulary took over a second)."""
        if self._stats is None:
            stored = dict(self._db.execute("SELECT name, value FROM statistics"))
            if len(stored) == 3:
                self._stats = (int(stored["count"]), stored["mean_length"], stored["mean_idf"])
            else:  # a writer that has not finished
                self._stats = self._computed_statistics()
        return self._stats

    def _computed_statistics(self) -> tuple[int, float, float]:
        count, total = self._db.execute("SELECT count(*), coalesce(sum(length), 0) FROM chunks").fetchone()
        idfs = [_raw_idf(count, df) for (df,) in self._db.execute("SELECT doc FROM terms")]
        return (count, total / count if count else 0.0, sum(idfs) / len(idfs) if idfs else 0.0)

    def _idf(self, terms: set[str], count: int, mean_idf: float) -> dict[str, float]:
        # A term no chunk holds weighs as the rarest: only a card (kept out of this index) has it.
        idf = dict.fromkeys(terms, _raw_idf(count, 0) if count else 0.0)
        if terms:
            marks = ",".join("?" * len(terms))
            for term, df in self._db.execute(f"SELECT term, doc FROM terms WHERE term IN ({marks})", sorted(terms)):
                raw = _raw_idf(count, df)
                idf[term] = raw if raw >= 0 else EPSILON * mean_idf
        return idf

    def close(self) -> None:
        self._db.close()


def _raw_idf(count: int, df: int) -> float:
    return math.log(count - df + 0.5) - math.log(df + 0.5)


def build_from_collection(collection: Any, path: Path, kind: str, page: int = 1000) -> LexicalIndex:
    """A word index for a collection that has none (a Chroma server's version, read once per
    machine), of its chunks of `kind`, written beside `path` and moved into place whole."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
    partial.unlink(missing_ok=True)
    index = LexicalIndex(partial, writable=True)
    try:
        for offset in range(0, collection.count(), page):
            got = collection.get(include=["documents", "metadatas"], limit=page, offset=offset)
            index.add(
                (chunk_id, str(meta["path"]), chunk_words(str(meta["guide"]), str(meta["section"]), text))
                for chunk_id, meta, text in zip(got["ids"], got["metadatas"], got["documents"], strict=True)
                if meta.get("kind", kind) == kind
            )
            index.add_spellings(
                (str(meta["path"]), guide_words(f"{meta['guide']} {meta['section']} {text}"))
                for meta, text in zip(got["metadatas"], got["documents"], strict=True)
            )
        index.finish()
        index.close()
        os.replace(partial, path)
    except BaseException:
        index.close()
        partial.unlink(missing_ok=True)
        raise
    return LexicalIndex(path)
