"""The word index: SQLite FTS5 on disk, scored as Okapi BM25 with the weights the ranking was tuned with."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tutor.lexical import LexicalIndex, lexical_tokens

DOCS = {
    "a": "pre-training takes months and costs millions; the model learns language",
    "b": "fine-tuning takes days; the model learns a task",
    "c": "prompting takes seconds; the model is unchanged",
    "d": "the glossary defines tokens",
}


@pytest.fixture
def words(tmp_path: Path) -> LexicalIndex:
    path = tmp_path / "lexical.sqlite"
    writer = LexicalIndex(path, writable=True)
    writer.add((chunk_id, f"{chunk_id}.md", lexical_tokens(text)) for chunk_id, text in DOCS.items())
    writer.finish()
    writer.close()
    return LexicalIndex(path)


def okapi(terms: list[str], doc: list[str], corpus: list[list[str]]) -> float:
    """BM25 written out from its definition, as rank_bm25 0.2.2 computes it."""
    k1, b, eps = 1.5, 0.75, 0.25
    n, mean_length = len(corpus), sum(map(len, corpus)) / len(corpus)
    vocabulary = {t for d in corpus for t in d}
    raw = {
        t: math.log(n - sum(t in d for d in corpus) + 0.5) - math.log(sum(t in d for d in corpus) + 0.5)
        for t in vocabulary
    }
    mean_idf = sum(raw.values()) / len(raw)
    score = 0.0
    for term in terms:
        idf = raw.get(term, 0.0)
        idf = idf if idf >= 0 else eps * mean_idf
        tf = doc.count(term)
        score += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len(doc) / mean_length))
    return score


@pytest.mark.parametrize("question", ["How long does pre-training take?", "Does the model learn?", "tokens glossary"])
def test_scores_are_okapi_bm25_as_tuned(words: LexicalIndex, question: str) -> None:
    corpus = [lexical_tokens(text) for text in DOCS.values()]
    terms = lexical_tokens(question)
    expected = [okapi(terms, doc, corpus) for doc in corpus]
    assert words.scores(terms, corpus) == pytest.approx(expected, abs=1e-9)
    # "model" is in three of four chunks: a negative idf, weighted as a quarter of the mean instead
    if "model" in terms:
        assert all(score > 0 for score in expected[:3])


def test_a_word_no_chunk_has_weighs_as_the_rarest_and_changes_no_chunks_score(words: LexicalIndex) -> None:
    """A guide's card is kept out of the index (tutor.index.guide_card): its "Trooster" must
    count for it, and the chunks' own scores stay BM25 over the index."""
    corpus = [lexical_tokens(text) for text in DOCS.values()]
    terms = lexical_tokens("who wrote the glossary")
    assert "wrote" in terms and all("wrote" not in doc for doc in corpus)
    assert words.scores(terms, corpus) == pytest.approx([okapi(terms, doc, corpus) for doc in corpus], abs=1e-9)
    card = lexical_tokens("the glossary was written by Clever Ops, who wrote it")
    unknown, known = words.scores(terms, [card, lexical_tokens("the glossary defines tokens")])
    assert unknown > known > 0


def test_search_finds_chunks_with_any_of_the_words_best_first(words: LexicalIndex) -> None:
    assert words.search(lexical_tokens("pre-training months"), 10) == ["a"]
    found = words.search(lexical_tokens("takes days"), 10)
    assert found[0] == "b" and set(found) == {"a", "b", "c"}
    assert words.search(lexical_tokens("weather in Paris"), 10) == []
    assert words.search([], 10) == [] and words.chunk_count == 4


def test_removing_a_guide_removes_its_words(tmp_path: Path) -> None:
    writer = LexicalIndex(tmp_path / "lexical.sqlite", writable=True)
    writer.add((chunk_id, f"{chunk_id}.md", lexical_tokens(text)) for chunk_id, text in DOCS.items())
    writer.remove_paths(["b.md"])
    writer.finish()
    assert writer.search(lexical_tokens("fine-tuning days"), 10) == []
    assert writer.chunk_count == 3


def test_a_missing_word_index_is_not_created_by_a_reader(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        LexicalIndex(tmp_path / "lexical.sqlite")
    assert not (tmp_path / "lexical.sqlite").exists()
