"""Sentence support and the citing stream (deterministic fake embeddings: pure logic)."""

from __future__ import annotations

import math

import pytest

from tutor.explain import (
    CitingStream,
    SentenceSupport,
    SupportScorer,
    attribute,
    layer_shares,
    sentence_token_spans,
    split_sentences,
)
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


def test_a_widened_passage_is_embedded_only_when_a_sentence_is_scored() -> None:
    """Retriever.widen joins chunks without embedding the joined text: that would cost the model's
    first token 0.14 s with all-mpnet-base-v2; the scorer embeds it at the first sentence."""
    embedded: list[str] = []

    def embed(text: str) -> list[float]:
        embedded.append(text)
        return _fake_embed(text)

    widened = Passage(id="p1+p3", text=PASSAGES[0].text, guide="G", path="g.md", section="S", position=1, score=0.5)
    scorer = SupportScorer([widened, PASSAGES[1]], embed)
    assert embedded == []
    assert scorer.score("Pre-training creates the foundational model.").supported_by == (1,)
    assert embedded == [f"G\nS\n{PASSAGES[0].text}", "Pre-training creates the foundational model."]
    scorer.score("RAG incorporates external knowledge.")
    assert len(embedded) == 3  # the sentence alone


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


def test_layer_shares_stacked_and_shapley() -> None:
    # The bare model gives each token p=0.2, the prompt lifts it to 0.4, the passages to 0.8.
    stacked = layer_shares(math.log(0.8), math.log(0.4), math.log(0.2))
    assert (stacked.model, stacked.prompt, stacked.retrieval) == (0.25, 0.25, 0.5)
    # Passages alone reach 0.8 as well: Shapley gives the prompt half of its stacked share.
    shapley = layer_shares(math.log(0.8), math.log(0.4), math.log(0.2), with_passages=math.log(0.8))
    assert (shapley.model, shapley.prompt, shapley.retrieval) == (0.25, 0.125, 0.625)
    # A layer that makes the answer less likely gets no share, not a negative one.
    worse = layer_shares(math.log(0.5), math.log(0.1), math.log(0.5))
    assert worse.prompt == 0.0 and worse.model + worse.retrieval == pytest.approx(1.0)


def test_sentence_token_spans_skip_the_models_markers() -> None:
    raw = "Ahoy! RAG adds passages [2]. Done."
    pieces = ["Ahoy", "!", " RAG", " adds", " passages", " [", "2", "].", " Done", "."]
    spans = sentence_token_spans(["Ahoy!", "RAG adds passages.", "Done."], raw, pieces)
    assert spans == [[0, 1], [2, 3, 4, 5, 6, 7], [8, 9]]
    assert sentence_token_spans(["Not in the answer."], raw, pieces) == [[]]


def test_attribute_weights_sentences_by_length() -> None:
    # Sentence one (1 token) comes from the prompt alone, sentence two (3 tokens) from the passages.
    pieces = ["Ahoy.", " RAG", " adds", " text."]
    lp = math.log
    scored = {
        "full": [(p, lp(0.9)) for p in pieces],
        "prompt": [(pieces[0], lp(0.9))] + [(p, lp(0.1)) for p in pieces[1:]],
        "alone": [(p, lp(0.1)) for p in pieces],
    }
    overall, per_sentence = attribute(scored, "Ahoy. RAG adds text.", ["Ahoy.", "RAG adds text."])
    assert per_sentence[0] is not None and per_sentence[0].prompt > 0.85
    assert per_sentence[1] is not None and per_sentence[1].retrieval > 0.85
    assert overall.retrieval == pytest.approx((0 + 3 * per_sentence[1].retrieval) / 4, abs=0.002)
