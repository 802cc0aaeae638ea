"""Sentence support and the citing stream (deterministic fake embeddings: pure logic)."""

from __future__ import annotations

from tutor.explain import CitingStream, SentenceSupport, SupportScorer, split_sentences
from tutor.retrieve import Passage


def _passage(n: int, text: str, vector: tuple[float, ...]) -> Passage:
    return Passage(id=f"p{n}", text=text, guide="G", path="g.md", section="S", position=n, score=0.5, embedding=vector)


PASSAGES = [
    _passage(1, "Pre-training creates the foundational model over months.", (1.0, 0.0)),
    _passage(2, "RAG incorporates external knowledge on the fly.", (0.0, 1.0)),
]


def _fake_embed(text: str) -> list[float]:
    """Like MiniLM on a paraphrase: similar (0.8) to the passage on the same topic, not identical."""
    return [0.8, 0.6] if "train" in text.lower() else [0.6, 0.8] if "rag" in text.lower() else [0.0, 0.0]


def test_split_sentences_keeps_list_items_and_drops_markers() -> None:
    text = "The layers are:\n1. Pre-training [1]\n2. RAG. It is cheap! Is it? Yes [2][3]."
    assert split_sentences(text) == ["The layers are:", "1. Pre-training", "2. RAG.", "It is cheap!", "Is it?", "Yes."]


def test_support_picks_the_backing_passage() -> None:
    scorer = SupportScorer(PASSAGES, _fake_embed)
    assert scorer.score("Pre-training creates the foundational model.").supported_by == (1,)
    assert scorer.score("RAG incorporates external knowledge.").supported_by == (2,)
    unsupported = scorer.score("Bananas are yellow and grow in bunches.")
    assert unsupported.supported_by == () and unsupported.support < 0.45


def test_words_repeated_from_the_question_are_not_support() -> None:
    question = "How long does pre-training of the foundational model take?"
    echo = "Pre-training of the foundational model takes time."
    assert SupportScorer(PASSAGES, _fake_embed).score(echo).supported_by == (1,)
    assert SupportScorer(PASSAGES, _fake_embed, question).score(echo).supported_by == ()


def test_stream_replaces_model_markers_with_checked_ones() -> None:
    stream = CitingStream(SupportScorer(PASSAGES, _fake_embed))
    pieces = ["Pre-training creates the found", "ational model [2", "]. RAG incorporates", " external knowledge", "."]
    shown = "".join(stream.feed(p) for p in pieces) + stream.finish()
    # The model's wrong [2] is gone; each sentence carries the passage that backs it.
    assert shown == "Pre-training creates the foundational model.[1] RAG incorporates external knowledge.[2]"
    assert stream.text == shown
    assert [s.supported_by for s in stream.sentences] == [(1,), (2,)]


def test_stream_shows_text_before_the_sentence_ends() -> None:
    stream = CitingStream(SupportScorer(PASSAGES, _fake_embed))
    assert stream.feed("Pre-training creates") == "Pre-training creates"
    assert stream.feed(" the model") == " the model"


def test_stream_without_passages_cites_nothing() -> None:
    stream = CitingStream(None)
    shown = stream.feed("Hello there. ") + stream.feed("Bye [1].") + stream.finish()
    assert shown == "Hello there. Bye."
    assert stream.sentences == [SentenceSupport("Hello there.", (), 0.0), SentenceSupport("Bye.", (), 0.0)]
