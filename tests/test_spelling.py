"""Typing slips corrected before a question is searched: the speller alone, the words an ingest
keeps for it, and the real index and model reading a question typed in a hurry."""

from __future__ import annotations

import sqlite3
from collections import Counter
from pathlib import Path

import pytest

from tutor import FolderStore, Retriever
from tutor.answer import Tutor
from tutor.embed import Embedder
from tutor.lexical import LexicalIndex, guide_words
from tutor.markers import NOT_COVERED_SAID
from tutor.spelling import Speller

from .conftest import FakeChat

GUIDE = (
    "Pre-training creates the foundational model and takes months. A base model is not usable as a "
    "chatbot: its output is a probability distribution. Fine-tuning adapts the layers of the model; "
    "prompting guides it at runtime. The staff course chapter was written for staff. Admit it."
)


@pytest.fixture(scope="module")
def speller() -> Speller:
    return Speller(Counter(guide_words(GUIDE)))


@pytest.mark.parametrize(
    ("typed", "meant"),
    [
        ("can we use the raw base moedl as a chatbot?", "can we use the raw base model as a chatbot?"),  # swapped
        ("what are the five layrs", "what are the five layers"),  # a letter left out
        ("how long does pretrainning take", "how long does pretraining take"),  # doubled; hyphen joined
        ("who is the staf course for", "who is the staff course for"),
        ("Moedl?", "Model?"),  # a capital kept
        ("is finetunign costly", "is finetuning costly"),
        ("is pretaining costly", "is pretraining costly"),  # the guides' word, not English "pertaining"
        ("a base modle", "a base model"),
        ("how lnog does it tkae", "how long does it take"),  # two letters swapped in the commonest words
        ("a probabilty distributon", "a probability distribution"),
    ],
)
def test_a_slip_is_corrected_to_the_word_one_slip_away(speller: Speller, typed: str, meant: str) -> None:
    assert speller.corrected(typed) == meant


@pytest.mark.parametrize(
    "typed",
    [
        "what's the weather in paris tomorrow",  # English the guides do not use
        "is RLHF used for ChatGPT or SharePoint",  # capitals inside: initialisms and names
        "optimisation at the centre of the organisation",  # British spelling
        "whos the author, i dont know",  # an apostrophe left out
        "ppl say llm",  # under four letters
        "ask the admin",  # one letter from "admit", which the guides use: a short word is not substituted
        "прошу объяснить, 什么是预训练",  # no Latin letters
        "why couldn't staff use it? they shouldn’t",  # an apostrophe: "couldn" is no slip
        "la décision de préentraînement",  # letters outside English's alphabet
        "fatser cheapper",  # one slip from English words the guides do not use, not two letters swapped in a common one
        "agentic json chunking with upskilled staff, can we pretrain",  # jargon, and prefixes joined
        "tokenise it",  # a British ending
    ],
)
def test_a_word_english_or_the_guides_know_is_left_as_typed(speller: Speller, typed: str) -> None:
    assert speller.corrected(typed) == typed


def test_without_the_guides_words_nothing_is_corrected() -> None:
    assert Speller(Counter()).corrected("the moedl") == "the moedl"


def test_a_long_hostile_question_keeps_its_words_and_only_so_many_are_looked_up(speller: Speller) -> None:
    typed = " ".join(["xqzvbn", "moedl", "a" * 300, "-" * 50, "layrs"] * 40)
    corrected = speller.corrected(typed)
    assert corrected.split().count("model") == 40 and corrected.split().count("layers") == 40  # looked up once each
    assert len(corrected.split()) == len(typed.split())
    unknown = " ".join(f"zq{chr(97 + i // 26)}{chr(97 + i % 26)}x" for i in range(100))  # 100 words no one knows
    fresh = Speller(speller.counts)  # nothing looked up yet
    assert fresh.corrected(f"{unknown} moedl") == f"{unknown} moedl"  # past MOST_LOOKED_UP, left as typed
    assert fresh.corrected("moedl") == "model"


def test_an_ingest_keeps_each_guides_words_and_drops_a_removed_guides(tmp_path: Path) -> None:
    index = LexicalIndex(tmp_path / "lexical.sqlite", writable=True)
    index.add_spellings(
        [
            ("a.md", guide_words("Pre-training takes months")),
            ("a.md", guide_words("Training again")),
            ("b.md", guide_words("Prompting is cheap")),
        ]
    )
    index.finish()
    assert index.spellings()["training"] == 2 and index.spellings()["pretraining"] == 1
    index.remove_paths(["a.md"])
    index.finish()
    assert "training" not in index.spellings() and index.spellings()["prompting"] == 1


def test_a_word_index_without_spellings_gives_none(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    sqlite3.connect(path).close()
    assert LexicalIndex(path).spellings() == Counter()


def test_the_real_index_corrects_towards_the_guides(index_copy: Path, embedder: Embedder) -> None:
    retriever = Retriever(FolderStore(index_copy), embedder=embedder)
    assert retriever.corrected("can we use the raw base moedl as a chabtot for satff?") == (
        "can we use the raw base model as a chabtot for staff?"
    )
    assert retriever.corrected("how lnog does pretrainnig tkae, and is it pricy?") == (
        "how long does pretraining take, and is it pricy?"
    )
    assert retriever.corrected("who wrote the troostr chapter") == "who wrote the trooster chapter"  # a card's word


def test_a_question_typed_in_a_hurry_is_answered_from_its_passage(real_tutor: Tutor) -> None:
    """As typed, no passage reached the cosine floor and the question was refused; searched with
    its slips corrected it finds the passages on base models. The answer keeps the typed question."""
    typed = "why cant staf use a bsae modle as a chatbot?"
    answer = real_tutor.ask(typed)
    assert answer.in_scope and answer.question == typed
    assert answer.query == "why cant staff use a base model as a chatbot?"
    assert any("base model" in p.text.lower() for p in answer.sources)
    assert not NOT_COVERED_SAID.search(answer.answer), answer.answer


def test_the_model_reads_the_question_as_typed_and_the_setting_turns_correction_off(
    fake_tutor: tuple[Tutor, FakeChat],
) -> None:
    tutor, chat = fake_tutor
    typed = "what is pretrainnig?"
    prepared = tutor.prepare(typed)
    assert prepared.query == "what is pretraining?" and prepared.question == typed
    assert typed in tutor.messages_for(prepared)[-1]["content"]
    tutor.settings = tutor.settings.model_copy(update={"correct_spelling": False})
    assert tutor.prepare(typed).query == typed
