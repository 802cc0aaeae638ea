"""The reader on questions worded unlike any eval question: the facts it gives, scope decided by the
question itself, figures checked against the passages, and a verdict that rests on support."""

from __future__ import annotations

import re

import numpy as np
import pytest

from tutor import Tutor, load_settings
from tutor.answer import OUT_OF_SCOPE_ANSWER, Explained, is_fixed_reply
from tutor.injection import INSTRUCTIONS_REPLY
from tutor.retrieve import refers_back
from tutor.web.render import verdict
from tutor.web.transcript import UNBACKED_MARK, chat_messages

from .conftest import FakeChat

FINE_TUNING = [
    ("Is it worth teaching a model our own jargon with extra training?", "Fine-tuning adapts a model to a domain."),
    ("And roughly how long would that run?", "It takes hours to days."),
]


@pytest.mark.parametrize(
    ("question", "fact"),
    [
        ("How much time does the pre-training phase need, roughly?", r"month"),
        ("What kind of material does a model read during pre-training?", r"internet|books|web|text|data"),
    ],
)
def test_facts_on_wording_no_eval_question_uses(real_tutor: Tutor, question: str, fact: str) -> None:
    answer = real_tutor.ask(question, explain=False)
    assert answer.in_scope is True
    assert re.search(fact, answer.answer, re.IGNORECASE), answer.answer


def test_an_off_topic_follow_up_is_refused(real_tutor: Tutor) -> None:
    """Issue 12.3: two fine-tuning turns do not make a question about the weather in scope."""
    for question in ("What's the weather like in Paris this weekend?", "Can you recommend a good pizza place?"):
        answer = real_tutor.ask(question, FINE_TUNING, explain=False)
        assert answer.in_scope is False and answer.answer == OUT_OF_SCOPE_ANSWER, answer.answer
        assert answer.model == ""  # the model was not asked


def test_an_on_topic_question_after_a_refusal_is_answered(real_tutor: Tutor) -> None:
    history = [("Who won the football world cup in 2018?", OUT_OF_SCOPE_ANSWER)]
    answer = real_tutor.ask("Does supervised fine-tuning change the weights of a model?", history, explain=False)
    assert answer.in_scope is True and not is_fixed_reply(answer.answer), answer.answer
    assert all("do not cover" not in m["content"] for m in answer.prompt)  # the refusal is not in the prompt


def test_a_follow_up_that_leans_on_the_conversation_still_finds_its_topic(real_tutor: Tutor) -> None:
    answer = real_tutor.ask("And roughly how long would that run?", FINE_TUNING[:1], explain=False)
    assert answer.in_scope is True and answer.sources
    assert refers_back("How long?") and refers_back("And the cost?") and refers_back("Does it change the model?")
    assert not refers_back("What's the weather like in Paris this weekend?")
    assert is_fixed_reply(OUT_OF_SCOPE_ANSWER) and is_fixed_reply(INSTRUCTIONS_REPLY)


def test_a_figure_the_passages_contradict_is_repaired_or_flagged(fake_tutor: tuple[Tutor, FakeChat]) -> None:
    """Issue 12.2, check and repair: "3 years" beside a passage that says "months" is replaced by the
    guides' own sentence, and the answer says so; where no passage gives a duration, the sentence
    loses its citation and the warning names the figure."""
    tutor, chat = fake_tutor
    chat.replies.append(["The first layer is pre-training. ", "Pre-training takes about 3 years."])
    answer = tutor.ask("What are the five layers of AI model training?", explain=False)
    assert "3 years" not in answer.answer and "The guides say:" in answer.answer
    assert re.search(r"month", answer.answer), answer.answer
    repaired = [s for s in answer.sentences if s.replaced]
    assert repaired and repaired[0].replaced == "Pre-training takes about 3 years." and repaired[0].supported_by
    assert any("replaced by the guides' own sentence" in w for w in answer.warnings)
    assert answer.to_dict()["sentences"][1]["replaced"] == "Pre-training takes about 3 years."

    chat.replies.append(["Pre-training creates the base model. ", "It takes about 3 years."])
    flagged = tutor.ask("What does pre-training create?", explain=False)
    if "The guides say:" not in flagged.answer:  # no passage stated a duration: flagged instead
        assert not flagged.sentences[-1].supported_by
        assert any("(year)" in w and "none of its passages" in w for w in flagged.warnings), flagged.warnings


def test_the_verdict_rests_on_support_not_on_shares(fake_tutor: tuple[Tutor, FakeChat]) -> None:
    """Issue 12.4: an answer no passage supports is not "from the guides", whatever its shares; its
    unsupported sentences are marked in the answer itself."""
    tutor, chat = fake_tutor
    chat.replies.append(["Bananas are a yellow fruit rich in potassium. Monkeys like them."])
    answer = tutor.ask("How long does pre-training take?").to_dict()
    assert answer["attribution"]["retrieval"] > 0.5  # the fake model finds it likelier with passages
    assert verdict(answer).startswith("Not from the guides"), verdict(answer)
    shown = chat_messages([answer])[1]["content"]
    assert shown.count(UNBACKED_MARK) == 2
    backed = {**answer, "sentences": [{**s, "supported_by": [1]} for s in answer["sentences"]]}
    assert verdict(backed).startswith("Mostly from the guides")


def test_compare_with_both_layers_gives_the_guides_figures(real_tutor: Tutor) -> None:
    """The live demonstration: "+ both" answers the five layers' durations and costs from the guides."""
    for question, fact in (
        ("How long does the pre-training layer take?", r"month"),
        ("What does prompting cost, and how quickly does it work?", r"seconds|cheap"),
    ):
        both = next(e.answer for way, e in real_tutor.compare(question) if way == 3 and isinstance(e, Explained))
        assert both.in_scope is True and re.search(fact, both.answer, re.IGNORECASE), both.answer
        assert verdict(both.to_dict()).startswith("Mostly"), verdict(both.to_dict())


def test_contrastive_choice_follows_what_the_passages_add() -> None:
    """Context-aware decoding: the same belief picks the full context's best token; a token the
    passages make likelier wins over one the model alone prefers; an implausible token never wins."""
    from tutor.llm import contrastive_choice

    full = np.log(np.array([0.50, 0.45, 0.04, 0.01]))
    assert contrastive_choice(full, full.copy()) == 0
    plain = np.log(np.array([0.90, 0.05, 0.04, 0.01]))  # without passages the model says token 0
    assert contrastive_choice(full, plain) == 1  # the passages raised token 1 from 0.05 to 0.45
    plain = np.log(np.array([0.50, 0.45, 0.0001, 0.0499]))
    assert contrastive_choice(full, plain) in (0, 1)  # token 2 gained most, but is under 0.1 x the best


def test_context_aware_decoding_keeps_the_prompt_contexts_scores(real_tutor: Tutor) -> None:
    """With the second context, the answer's log-probabilities without passages come with the
    generation, and the attribution uses them instead of scoring that context again."""
    tutor = Tutor(
        retriever=real_tutor.retriever,
        chat=real_tutor.chat,
        embedder=real_tutor.embedder,
        presets=real_tutor.presets,
        settings=load_settings(context_aware_decoding=True),
    )
    answer = tutor.ask("Which of the five layers actually change the model?")
    generation = answer.generation
    assert generation is not None and generation.contrast is not None and generation.complete
    assert len(generation.contrast_scored) == len(generation.scored) > 3
    assert generation.logprobs_for(generation.contrast, answer.generated) == generation.contrast_scored
    assert answer.attribution is not None and answer.attribution["retrieval"] > 0.3, answer.attribution
    assert re.search(r"three|pre-?training|fine-?tuning", answer.answer, re.IGNORECASE), answer.answer
