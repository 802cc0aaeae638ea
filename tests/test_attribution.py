"""Layer attribution with the real default model, on cases whose right answer is known."""

from __future__ import annotations

import re

import pytest

from tutor import Tutor, load_settings
from tutor.explain import SupportScorer, split_sentences
from tutor.prompts import NEUTRAL_SYSTEM_PROMPT, Preset

from .conftest import ROOT

PIRATE = 'You are a pirate. Start every answer with "Ahoy, matey!" and talk like a pirate.'
STYLES = {
    "pirate": Preset("pirate", "Talks like a pirate.", PIRATE),
    "neutral": Preset("neutral", "The neutral prompt of the ablations.", NEUTRAL_SYSTEM_PROMPT),
}


@pytest.fixture(scope="module")
def styled_tutor(real_tutor: Tutor) -> Tutor:
    """The real tutor with a preset that forces a style the model would not choose itself."""
    return Tutor(
        retriever=real_tutor.retriever,
        chat=real_tutor.chat,
        embedder=real_tutor.embedder,
        presets={**real_tutor.presets, **STYLES},
        settings=real_tutor.settings,
    )


def _shares(answer: object) -> dict[str, float]:
    attribution = getattr(answer, "attribution", None)
    assert attribution is not None
    assert sum(attribution[k] for k in ("prompt", "retrieval", "model")) == pytest.approx(1.0, abs=0.01)
    return attribution


def test_retrieval_off_gives_retrieval_no_share(real_tutor: Tutor) -> None:
    answer = real_tutor.ask("What is pre-training?", retrieval=False)
    assert _shares(answer)["retrieval"] == 0.0
    assert all(s.layers is None or s.layers.retrieval == 0.0 for s in answer.sentences)


def test_answer_from_the_passages_is_mostly_retrieval(real_tutor: Tutor) -> None:
    answer = real_tutor.ask("What are the five layers of AI model training?")
    shares = _shares(answer)
    assert shares["retrieval"] > 0.5 and shares["retrieval"] > shares["model"], answer.answer
    assert answer.timings["explain_s"] is not None and "layered" in shares["method"]


def test_a_sentence_quoting_a_passage_is_supported_by_it_first(real_tutor: Tutor) -> None:
    assert real_tutor.retriever is not None
    passages = real_tutor.retriever.search("How is training data cleaned?", limit=3)
    for n, passage in enumerate(passages, start=1):
        quote = max(split_sentences(passage.text), key=len)
        support = SupportScorer(passages, real_tutor.embedder.embed_one).score(quote)
        assert support.supported_by[:1] == (n,), (quote, support)


def test_a_style_forcing_preset_raises_the_prompts_share(styled_tutor: Tutor) -> None:
    question = "What is pre-training?"
    # Against the neutral prompt (share 0 by construction) without passages, against the tutor's with them.
    for baseline, retrieval in (("neutral", False), ("tutor", True)):
        plain = _shares(styled_tutor.ask(question, retrieval=retrieval, preset=baseline))
        pirate = styled_tutor.ask(question, retrieval=retrieval, preset="pirate")
        assert pirate.answer.startswith("Ahoy"), pirate.answer
        # With passages the 1.5B model's pirate answer has a prompt share of 0.073-0.074 against
        # 0.026-0.037 for the tutor's preset over two runs (the 0.5B model's margin was wider).
        assert _shares(pirate)["prompt"] > plain["prompt"] + 0.03, (pirate.attribution, plain)
    greeting = pirate.sentences[0]
    assert greeting.layers is not None and greeting.layers.prompt > 0.8, greeting


def test_out_of_scope_questions_get_little_retrieval(real_tutor: Tutor) -> None:
    fixed = real_tutor.ask("Who won the football world cup in 2010?")
    assert _shares(fixed)["retrieval"] == 0.0 and "not asked" in _shares(fixed)["method"]
    # With the relevance threshold and the scope judgement off, unrelated passages reach the model;
    # they barely shape the answer.
    forced = Tutor(
        retriever=real_tutor.retriever,
        chat=real_tutor.chat,
        embedder=real_tutor.embedder,
        presets=real_tutor.presets,
        settings=load_settings(min_score=0.0, scope_judge_below=0.0, prompts_dir=ROOT / "prompts"),
    )
    answer = forced.ask("What is the capital of France?")
    assert answer.sources and re.search("Paris", answer.answer), answer.answer
    assert _shares(answer)["retrieval"] < 0.2
