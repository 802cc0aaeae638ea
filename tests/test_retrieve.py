"""Hybrid retrieval over the real corpus index, and choosing passages for the prompt."""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest

from tutor import FolderStore, Retriever, load_settings
from tutor.answer import rank_by_asked_figures
from tutor.embed import Embedder
from tutor.factory import ingest_from_settings
from tutor.lexical import lexical_tokens, with_initialisms_spelled_out
from tutor.markers import LIST_ITEM
from tutor.model_files import resolve_embed_model
from tutor.retrieve import (
    Passage,
    asks_about_a_guide,
    asks_for_further_reading,
    asks_for_history,
    asks_to_act,
    is_reading_list,
    join_overlapping,
    merge_found,
    names_own_things,
    select_for_prompt,
    standalone_query,
    tells_a_date,
)

from .conftest import CORPUS


@pytest.fixture
def retriever(index_copy: Path, embedder: Embedder) -> Retriever:
    return Retriever(FolderStore(index_copy), embedder=embedder)


@pytest.mark.parametrize(
    ("question", "phrase"),
    [
        ("What is backpropagation used for?", "Backpropagat"),
        ("What does Clever Ops recommend instead of full training?", "fraction of the cost"),
        ("What kind of content is removed when training data is cleaned?", "bombs"),
        ("Which training layers are runtime modifications?", "runtime modifications"),
    ],
)
def test_the_answering_passage_is_in_the_top_three(retriever: Retriever, question: str, phrase: str) -> None:
    passages = retriever.search(question, 3)
    assert any(phrase in p.text for p in passages), [p.text[:60] for p in passages]
    assert all(p.guide and p.path.endswith(".md") for p in passages)
    assert passages == sorted(passages, key=lambda p: -p.rank_score)


def test_out_of_scope_question_scores_below_the_threshold(retriever: Retriever) -> None:
    threshold = load_settings().min_score
    assert max(p.score for p in retriever.search("Who won the football world cup in 2010?", 8)) < threshold
    assert max(p.score for p in retriever.search("What are the five layers of model training?", 8)) > threshold


def test_bm25_finds_words_the_vectors_miss(index_copy: Path, embedder: Embedder) -> None:
    question = "What does Clever Ops recommend instead of full training?"
    hybrid = Retriever(FolderStore(index_copy), embedder=embedder, lexical_weight=0.4).search(question, 1)[0]
    assert "Clever Ops" in hybrid.section and hybrid.lexical == 1.0


@pytest.mark.parametrize(
    ("question", "phrase"),
    [
        ("Which layers do not alter the model at all?", "Only the first three"),
        ("why isn't the base model good enough on its own", "output is not usable"),
        ("why can't we use the base model directly", "output is not usable"),
    ],
)
def test_the_answering_sentence_lifts_its_chunk(
    index_copy: Path, embedder: Embedder, question: str, phrase: str
) -> None:
    """A chunk's vector blurs the one sentence in it that answers; its best sentence's cosine counts too."""
    by_chunks = Retriever(FolderStore(index_copy), embedder=embedder, sentence_weight=0.0).search(question, 3)
    by_sentences = Retriever(FolderStore(index_copy), embedder=embedder, sentence_weight=0.3).search(question, 3)
    assert not any(phrase in p.text for p in by_chunks)
    assert any(phrase in p.text for p in by_sentences), [p.text[:60] for p in by_sentences]
    # The score that decides scope is still the whole chunk's cosine.
    chunk_scores = {p.id: p.score for p in Retriever(FolderStore(index_copy), embedder=embedder).search(question, 40)}
    assert all(p.score == chunk_scores[p.id] for p in by_sentences)


def test_sentence_vectors_are_made_once_per_chunk(index_copy: Path, embedder: Embedder) -> None:
    embedded: list[str] = []

    class Counting(Embedder):
        def embed(self, texts: list[str], progress: bool = False) -> list[list[float]]:
            embedded.extend(texts)
            return embedder.embed(texts, progress)

    retriever = Retriever(FolderStore(index_copy), embedder=Counting(embedder.name), sentence_weight=0.3)
    first = retriever.search("How long does fine-tuning take?", 5)
    made = len(embedded)
    assert made > 5  # the query, then the candidates' sentences
    assert len(Retriever(FolderStore(index_copy), embedder=Counting(embedder.name)).search("RLHF", 3)) == 3
    assert len(embedded) == made + 1  # off by default: the query alone, no sentence
    made = len(embedded)
    second = retriever.search("How long does fine-tuning take?", 5)
    assert len(embedded) == made + 1  # the query alone
    assert [p.id for p in first] == [p.id for p in second]

    warmed = Retriever(FolderStore(index_copy), embedder=Counting(embedder.name), sentence_weight=0.3)
    warmed.warm_up()  # `tutor serve` does this before the first question: every chunk of a small corpus
    made = len(embedded)
    assert [p.id for p in warmed.search("How long does fine-tuning take?", 5)] == [p.id for p in first]
    assert warmed.search("What is RLHF short for?", 5) and len(embedded) == made + 2  # the two queries alone


def test_the_embedder_keeps_the_texts_it_embedded_lately(embedder: Embedder, monkeypatch: pytest.MonkeyPatch) -> None:
    """A question is searched more than once and the guides' sentences are ranked question after
    question: each text is encoded once, and the same vector comes back."""
    model = embedder._load()
    encoded: list[list[str]] = []
    encode = model.encode
    monkeypatch.setattr(model, "encode", lambda texts, **kw: encoded.append(list(texts)) or encode(texts, **kw))
    a, b, c = "a text that no other test embeds", "a second such text", "a third such text"
    first = embedder.embed([a, b])
    again = embedder.embed([b, a, c, c])
    assert encoded == [[a, b], [c]]
    assert again[:2] == first[::-1] and again[2] == again[3]
    monkeypatch.setattr("tutor.embed.CACHED_TEXTS", 2)
    embedder.embed(["a fourth such text"])  # the cache keeps the latest two: the third and the fourth
    embedder.embed([c, a])
    assert encoded[-1] == [a]


def test_a_replica_keeps_its_version_when_the_index_is_rebuilt_with_another_embedder(
    index_copy: Path, embedder: Embedder, tmp_path: Path
) -> None:
    """A rolling upgrade rebuilds the shared index with the new embedder: a replica still on the
    old one keeps searching the version it can compare, and one on the new model takes the new."""
    replica = Retriever(FolderStore(index_copy), embedder=embedder)
    before = [p.id for p in replica.search("What is RAG?", 3)]
    minilm = Embedder(resolve_embed_model("minilm", tmp_path))
    ingest_from_settings(load_settings(index_dir=index_copy, corpus_dir=CORPUS), embedder=minilm)
    assert FolderStore(index_copy).read_manifest()["settings"]["embed_model"] == minilm.model_id
    assert [p.id for p in replica.search("What is RAG?", 3)] == before
    assert replica.corpus_version and replica._opened.manifest["settings"]["embed_model"] == embedder.model_id
    upgraded = Retriever(FolderStore(index_copy), embedder=minilm)
    assert upgraded.search("What is RAG?", 3)


def test_follow_up_query_carries_the_topic() -> None:
    assert standalone_query("Why?", []) == "Why?"
    history = [("What is RAG?", "RAG retrieves passages [1]. It adds them to the prompt [2].")]
    assert (
        standalone_query("How much does it cost?", history)
        == "What is RAG? RAG retrieves passages. How much does it cost?"
    )
    refused = [("Who won the cup?", "The guides do not cover this. I answer questions about training.")]
    assert standalone_query("When?", refused) == "Who won the cup? When?"


def test_a_follow_up_of_a_follow_up_reaches_back_to_the_question_that_named_its_topic() -> None:
    """A question such as "Is it cheap?" after "And how long does that take?" was searched without the
    topic both lean on.
    Only a pronoun or an opening such as "and" reaches further back: "What is fine-tuning?" is short, not
    leaning."""
    chain = [
        ("Where does Bob eat?", "At home."),
        ("What is fine-tuning?", "Fine-tuning adapts a model [1]."),
        ("And how long does that take?", "Hours to days [1]."),
    ]
    assert (
        standalone_query("Is it cheap?", chain)
        == "What is fine-tuning? And how long does that take? Hours to days. Is it cheap?"
    )
    named = "What is fine-tuning? Fine-tuning adapts a model. Is it cheap?"
    assert standalone_query("Is it cheap?", chain[:2]) == named
    leaning = [("And then?", "More."), ("And after that?", "Less."), ("And that?", "Some."), ("And this one?", "None.")]
    assert standalone_query("Why?", leaning) == "And after that? And that? And this one? None. Why?"  # three at most


def test_follow_up_finds_its_passage_through_the_previous_answer(retriever: Retriever) -> None:
    history = [("What is pre-training?", "Pre-training creates the foundational model from massive amounts of text.")]
    found = retriever.search(standalone_query("How long does it take?", history), 3)
    assert any("months" in p.text for p in found)


def test_lexical_tokens_are_the_same_from_many_threads_at_once() -> None:
    """The server tokenizes on many threads; a stemmer shared between them mangled words."""
    texts = [path.read_text() for path in sorted(CORPUS.glob("*.md"))]
    expected = [lexical_tokens(text) for text in texts]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lexical_tokens, texts * 8))
    assert results == expected * 8


def test_lexical_tokens_join_hyphens_and_drop_stopwords() -> None:
    assert lexical_tokens("What is pre-training of the models?") == ["pretrain", "model"]
    assert lexical_tokens("backpropagation") == lexical_tokens("Backpropagates")


@pytest.mark.parametrize(
    ("british", "american"),
    [
        ("optimisation", "optimization"),
        ("specialise", "specialize"),
        ("behaviour", "behavior"),
        ("analysed", "analyzed"),
        ("fine tuning", "fine-tuning"),
        ("pre training", "pretraining"),
    ],
)
def test_spellings_of_one_word_are_one_word(british: str, american: str) -> None:
    assert lexical_tokens(british) == lexical_tokens(american)
    assert lexical_tokens("your four hours") == ["four", "hour"]  # "our" is cut only after i, b, l, v, n, m


def test_a_british_spelling_finds_the_same_passage_with_all_its_words(retriever: Retriever) -> None:
    """ "optimisation" once left the five layers' list without all the question's words, and the
    question was refused as not covered; the guides' own "specialisation" is found by "specialization"."""
    british = retriever.search("preference optimisation in weeks?", 1)[0]
    american = retriever.search("preference optimization in weeks?", 1)[0]
    assert british.id == american.id and british.has_all_terms
    assert any("specialisation" in p.text for p in retriever.search("domain specialization", 3))


def test_initialisms_are_searched_with_their_words() -> None:
    assert with_initialisms_spelled_out("RLHF vs sft vs rlhf?") == (
        "RLHF (reinforcement learning from human feedback) vs sft (supervised fine-tuning) vs rlhf?"
    )
    assert with_initialisms_spelled_out("RAGs") == "RAGs (retrieval augmented generation)"
    for plain in ("How do you drag a fragment of the corpus in?", "What is pre-training?", "dpo2", ""):
        assert with_initialisms_spelled_out(plain) == plain  # whole words only


def test_an_initialism_alone_finds_the_passage_that_spells_it_out(retriever: Retriever) -> None:
    """The embedder alone put "rlhf??" nearest a general passage on training (cosine 0.10): the
    guides spell out the reinforcement learning and name RLHF once, in a glossary list."""
    for question in ("rlhf explained pls", "what does rlhf do"):
        passages = retriever.search(question, 3)
        assert any("reinforcement learning" in p.text for p in passages), [p.text[:60] for p in passages]
    # Whether a passage holds all the question's words is read from the words typed: the glossary
    # line holds "RLHF aligning behaviour", not "reinforcement" or "feedback".
    glossary = next(p for p in retriever.search("RLHF aligning behaviour", 8) if "RLHF: Aligning" in p.text)
    assert glossary.has_all_terms and "reinforcement" not in glossary.text.lower()


def test_retriever_follows_a_new_index_version(index_copy: Path, embedder: Embedder, tmp_path: Path) -> None:
    retriever = Retriever(FolderStore(index_copy), embedder=embedder)
    guides = tmp_path / "guides"
    shutil.copytree(CORPUS, guides)
    (guides / "zebra.md").write_text("---\ntitle: Zebras\n---\n# Zebras\n\nZebras are striped horses of Africa.\n")
    ingest_from_settings(load_settings(index_dir=index_copy), [guides], embedder=embedder)
    assert retriever.search("Which animals have stripes?", 1)[0].guide == "Zebras"


def _p(n: int, score: float, text: str = "x") -> Passage:
    return Passage(id=str(n), text=text, guide="G", path="g.md", section="", position=n, score=score, rank_score=score)


def test_select_for_prompt_keeps_relevant_passages_within_budget() -> None:
    passages = [_p(1, 0.8, "a " * 50), _p(2, 0.7, "b " * 50), _p(3, 0.6, "c " * 50), _p(4, 0.1)]
    count = lambda text: len(text.split())  # noqa: E731
    chosen = select_for_prompt(passages, k=3, min_score=0.2, margin=0.5, token_budget=120, count_tokens=count)
    assert [p.id for p in chosen] == ["1", "2"]  # the third would pass the budget
    chosen = select_for_prompt(passages, k=3, min_score=0.2, margin=0.15, token_budget=999, count_tokens=count)
    assert [p.id for p in chosen] == ["1", "2"]  # the third is too far below the best
    assert select_for_prompt([_p(1, 0.1)], k=3, min_score=0.2, margin=1, token_budget=999, count_tokens=count) == []


def test_select_for_prompt_follows_the_hybrid_rank_once_the_question_is_covered() -> None:
    count = lambda text: len(text.split())  # noqa: E731
    lexical_best = replace(_p(1, 0.15), rank_score=0.9)  # below the floor, but every word matches
    passages = [lexical_best, _p(2, 0.5), _p(3, 0.05)]
    chosen = select_for_prompt(passages, k=3, min_score=0.2, margin=0.5, token_budget=999, count_tokens=count)
    assert [p.id for p in chosen] == ["1", "2"]  # the third is too far below the best
    uncovered = [replace(p, score=0.1) for p in passages]
    assert select_for_prompt(uncovered, k=3, min_score=0.2, margin=1, token_budget=999, count_tokens=count) == []


def test_neighbouring_chunks_are_joined_without_their_overlap() -> None:
    assert (
        join_overlapping("One two three. Four five six.", "Four five six. Seven.")
        == "One two three. Four five six. Seven."
    )
    assert join_overlapping("First part.", "Second part.") == "First part.\nSecond part."


def _words(text: str) -> int:
    return len(text.split())


def test_the_best_passage_takes_in_the_rest_of_its_list(retriever: Retriever) -> None:
    """The five layers are listed across two chunks; the best chunk alone names four."""
    found = retriever.search("What are the five layers of AI model training?", 8)
    assert "Retrieval" not in found[0].text and "RAG" not in found[0].text
    widened = retriever.widen(found[:1], token_budget=400, count_tokens=_words)
    assert len(widened) == 1 and widened[0].score == found[0].score
    assert found[0].text in widened[0].text and "5. RAG" in widened[0].text
    assert widened[0].text.count("4. Prompting") == 1  # the chunks' overlap is said once
    assert widened[0].embedding != found[0].embedding  # re-embedded, for citation support
    assert retriever.widen(found[:1], token_budget=_words(found[0].text), count_tokens=_words) == found[:1]


def test_a_passage_cut_inside_a_list_takes_in_the_rest_of_it(retriever: Retriever) -> None:
    """Not only the best passage: a second one cut after the fourth of five layers takes the fifth,
    while the budget lasts; a passage that does not end inside a list is left as it is."""
    layers = retriever.search("What are the five layers of AI model training?", 8)[0]
    other = retriever.search("What is backpropagation used for?", 8)[0]
    assert "5. RAG" not in layers.text and other.section != layers.section
    widened = retriever.widen([other, layers], token_budget=2000, count_tokens=_words)
    assert [p.score for p in widened] == [other.score, layers.score]
    assert "5. RAG" in widened[1].text and widened[1].text.count("4. Prompting") == 1
    tight = _words(other.text) + _words(layers.text)
    assert retriever.widen([other, layers], token_budget=tight, count_tokens=_words) == [other, layers]
    # With room to spare, a second passage that ends on no list item stays as it is.
    assert not LIST_ITEM.match(other.text.rstrip().rsplit("\n", 1)[-1])
    assert retriever.widen([layers, other], token_budget=2000, count_tokens=_words)[1] == other


def test_chosen_chunks_that_touch_become_one_passage(retriever: Retriever) -> None:
    found = retriever.search("What are the five layers of AI model training?", 8)
    first = found[0]
    next_id = retriever.widen([first], token_budget=400, count_tokens=_words)[0].id.split("+")[1]
    follower = replace(first, id=next_id, position=first.position + 1, score=0.3)
    # Chosen as a passage of its own, the next chunk is read inside the best one, under one number.
    merged = retriever.widen([first, follower], token_budget=0, count_tokens=_words)
    assert [(p.id, p.score) for p in merged] == [(f"{first.id}+{next_id}", first.score)]


ABOUT_A_GUIDE = [
    "Which person wrote the AI literacy chapter for staff?",
    "Who is the author of the glossary entry?",
    "how many minutes does the staff chapter take to read",
    "How long does the staff chapter take to read?",
    "What sections does the blog post on assistants have?",
    "Who is the five layers guide aimed at?",
    "who's the 5 layers doc for?",
    "Who should read the staff chapter?",
    "Is the course section written by one person?",
    "Who made the glossary?",
    "Who publishes the Clever Ops page?",
    "where is the assistants blog from?",
    "what does the post-training article cover?",
    "whos the five layers write-up for?",
    "what's in the glossary page, section-wise?",
    # Kinds of question and ways of naming a guide added on 2026-12-07 (a set written apart from
    # the project caught 2 of 11 questions about a guide as a text on its hold-out half; now 6).
    "Is the assistants article finished or a work in progress?",
    "what kind of source is the clever ops glossary?",
    "can you give me an overview of Trooster's chapter?",
    "Which headings does the five layers piece use?",
    "what's the post-training section about?",
    "Who published 'How AI Assistants Learn'?",
]
ABOUT_THE_SUBJECT = [
    "How long is pre-training?",
    "How long does the fine-tuning step take?",
    "Pretraining is only written text, no code, right?",
    "What do the guides say about RAG?",
    "Who decides what the model should refuse?",
    "What sources of data go into pre-training?",
    "Where does the training text come from?",
    "What's the maximum context length in tokens for a document?",
    "How long is a typical document in the training set?",
    "Is the training data mostly text written by humans?",
    "Which documents are used for fine-tuning?",
    "Who writes the example answers used in fine-tuning?",
    "Which sections of the training data are filtered?",
    "Who wrote Hamlet?",
    "Who wrote the EU AI Act?",
    "According to the guide, how long does pre-training take?",
    "Where do the pages used in pre-training come from?",
    "What does fine-tuning cover?",
    "Who publishes the most capable models?",
    "How long is the draft model trained for?",
    "Where does each page of pre-training data come from?",
    "What does the course of pre-training cover?",
    "In the staff course, what happens during fine-tuning?",
    "What does the five layers guide say fine-tuning costs?",
    "Is pre-training complete after one pass over the data?",
    "What kind of text does pre-training use?",
    "Which sections of a model are changed by fine-tuning?",
    "Someone mentioned a 'language map' in the AI course. What's that about?",
    "What's the length of the model's context window?",  # two apostrophes are not a quoted title
    "What does the post-training phase cover?",
    "Is the post-training stage complete once RLHF is done?",
    "Which sections does fine-tuning change?",
    "Which things does pre-training cover?",
]


def test_a_question_about_a_guide_is_told_from_one_about_its_subject() -> None:
    assert [q for q in ABOUT_A_GUIDE if not asks_about_a_guide(q)] == []
    assert [q for q in ABOUT_THE_SUBJECT if asks_about_a_guide(q)] == []


ACTS_OUTSIDE_THE_CHAT = [
    "ok can u email that to my manager",
    "thanks - send that to my boss",
    "could you put that in my calendar for next week",
    "save it to my drive pls",
    "cc jan on this",
    "set me a reminder for friday",
    "can it book me a meeting room for 3?",
    "Great. Please print the above.",
    "I'd like you to post this in the team channel",
    "what is rag and can you email it to my boss",
    "explain rlhf then send it to my manager",
    "can u send this to hr",
    "can you send the answer to john@acme.com",
    "let my boss know",
    "create a jira issue",
    "can you e‑mail it to my boss",
    "remind me to try prompting tomorrow",
]
ASKS_IN_THE_CHAT = [
    "can you say that more simply",
    "put that as a list?",
    "can you send me an example?",
    "can you share an example with me",
    "order the layers by cost",
    "Book recommendations?",
    "remind me what RLHF stands for",
    "remind me again how long fine-tuning takes",
    "remind me, what's rlhf?",
    "remind me about fine-tuning",
    "remind me quickly what a base model is",
    "can you put it in notes form",
    "put it in a slack-friendly format",
    "can you write it in an email format",
    "can you print the five layers as a list",
    "Message passing: what is it?",
    "can you share that with me",
    "and then what happens to the model?",
    "Text generation for chatbots: how?",
    "Put simply, what is RAG?",
    "can fine-tuning add knowledge to the model?",
    "does RAG put documents into the prompt?",
    "In RAG, documents are added to the prompt, right?",
]


def test_a_request_to_act_outside_the_chat_is_told_from_one_inside_it() -> None:
    assert [q for q in ACTS_OUTSIDE_THE_CHAT if not asks_to_act(q)] == []
    assert [q for q in ASKS_IN_THE_CHAT if asks_to_act(q)] == []


ASKS_FOR_HISTORY = [
    "who came up with that?",
    "and who invented it in the first place",
    "what year did the first chatbot appear?",
    "Since when do people use the word 'foundation model'?",
    "when was the transformer introduced",
    "which lab coined the term RLHF?",
    "the researchers behind backprop, who were they?",
    "how old is rlhf",
    "what's the origin of rag",
    "who's behind rlhf",
    "when’d chatgpt come out",
    "who made the first llm",
]
ASKS_NO_HISTORY = [
    "when is fine-tuning used?",
    "who does the labelling for RLHF?",
    "who wrote the glossary entry?",
    "when did training mean something else?",
    "what's a knowledge cut-off date?",
    "which company's guide is the glossary from?",
    "how long does pre-training take?",
    "which people give feedback first?",
    "which people are behind the preference data?",
    "when was the base model created, before fine tuning?",
    "when did the cleaning step begin?",
    "is that citation invented by the model?",
    "why is the release date later than the cut-off?",
]


def test_a_question_of_history_is_told_from_one_about_when_or_who_in_training() -> None:
    assert [q for q in ASKS_FOR_HISTORY if not asks_for_history(q)] == []
    assert [q for q in ASKS_NO_HISTORY if asks_for_history(q)] == []
    assert tells_a_date("papers going back to the 1950s") and tells_a_date("released in 2017.")
    assert not tells_a_date("It takes 1000 GPUs and months.") and not tells_a_date("step 2 of 5")


def test_the_staff_members_own_things_are_named_by_a_possessive() -> None:
    assert names_own_things("does it work on my phone?") and names_own_things("is that allowed under our policy")
    assert not names_own_things("does it work on phones?") and not names_own_things("mind the gap: what is RAG?")
    for question in (
        "my bad, I meant how long does it take?",
        "sorry, my question was: how long?",
        "oh my, why so long?",
    ):
        assert not names_own_things(question), question


def test_a_question_about_a_guide_finds_its_card_and_no_other_question_does(retriever: Retriever) -> None:
    """The card (tutor.index.guide_card) answers who wrote a guide; it is searched only for such
    questions, and its words are not in the word index, whose statistics rank every chunk."""
    found = retriever.search("Which person wrote the AI literacy chapter for staff, and how long is it?", 3)
    assert found[0].section == "About this guide" and "Steven Trooster" in found[0].text
    assert "Reading time: 3 minutes." in found[0].text
    for question in [*ABOUT_THE_SUBJECT, "What is reinforcement learning from human feedback?"]:
        assert not [p for p in retriever.search(question, 8) if p.section == "About this guide"], question
    opened = retriever.store.open_version()
    assert opened.words.search(lexical_tokens("Trooster"), 5) == []
    opened.words.close()
    opened.client.close()


def test_the_card_of_the_guide_a_question_names_comes_first(retriever: Retriever) -> None:
    """Ranked with the chunks, a card lost its place to chunks on the guide's subject, and by
    cosine alone another guide's card came first: the title that holds most of the question's
    words decides."""
    for question, title in [
        ("who's the five layers write-up meant for?", "The five layers of model training"),
        ("how long is the blog on ai assistants?", "How AI Assistants Learn"),
        ("who publishes the clever ops glossary page?", "Training (glossary entry, Clever Ops)"),
        ("what does the post-training article cover?", "AI Model Training and Post-Training"),
        ("Who should read the staff chapter?", "How are LLM's trained?"),
        ("how long is the trooster chapter?", "How are LLM's trained?"),  # named by its author
        ("can you give me an overview of Trooster's chapter?", "How are LLM's trained?"),
        ("Who published 'How AI Assistants Learn'?", "How AI Assistants Learn"),
        ("Is the layers piece finished, or a draft?", "The five layers of model training"),
    ]:
        first = retriever.search(question, 3)[0]
        assert first.section == "About this guide" and title in first.text.split("\n", 1)[0], question


def test_a_question_for_further_reading_gets_the_guides_reading_list_first(retriever: Retriever) -> None:
    """ "Want to know more?" shares no word with "any further reading?", and ranked 6th for it."""
    for question in (
        "where could I read more about how LLMs are trained?",
        "got a reading list for me?",
        "does the staff chapter recommend anything to read?",
        "can you recommend any good books on how LLMs are trained?",
        "Do the guides have any further reading on how models are trained?",
        "What should I read next?",
        "Any books you would recommend?",
    ):
        assert asks_for_further_reading(question), question
        assert retriever.search(question, 8)[0].section.endswith("Want to know more?"), (
            question
        )  # as the tutor searches
    for question in (
        "Does the model learn more during pre-training?",
        "Does pre-training need more resources than fine-tuning?",
        "What sources of data are used in pre-training?",
        "Do bigger models know more?",
        "Does the model read more text in pre-training than in fine-tuning?",
        "Does RLHF need further resources beyond pre-training?",
        "What are the recommended sources of pre-training data?",
        "Can you give me a deep dive on RLHF?",
        "How can we learn more from fewer examples?",
        "Does the model read further back in a long context?",
        "Does pre-training use books?",
        "Can you recommend a reading order for the guides?",
        "Does the model decide what to read?",
        "If you give the model something to read, does it learn from it?",
        "Is there anything to read into a sudden loss spike?",
        "Would you recommend a books-only corpus for fine-tuning?",
        "Do the guides suggest books as pre-training data?",
        "What should we read into these loss curves?",
        "Which data should the model read first?",
    ):
        assert not asks_for_further_reading(question), question
        assert not retriever.search(question, 3)[0].section.endswith("Want to know more?"), question
    assert is_reading_list("Guide > References") and is_reading_list("Further reading")
    assert not is_reading_list("Compute > Resources") and not is_reading_list("Reading the data")


def test_what_the_question_names_stays_first_whatever_is_scored_after(retriever: Retriever) -> None:
    """The card was put first by a nudge to its rank score, which the bonus for passages giving an
    asked duration then undid: "how long is the five layers guide?" got the layers' durations and
    no card. Named passages now stay first through that bonus, a second search and the margin."""
    question = "how long is the five layers guide?"
    found = retriever.search(question, 16)
    card = found[0]
    assert card.named and card.section == "About this guide" and "five layers" in card.text.split("\n", 1)[0]
    assert rank_by_asked_figures(found, question)[0] == card  # TLDR's "(months, …)" would take its place
    other = retriever.search("how long does pre-training take?", 8)
    assert merge_found(other, found)[0] == card and merge_found(found, other)[0] == card
    below = replace(card, rank_score=0.1)  # scored far below the rest, and still chosen, first
    chosen = select_for_prompt([below, *other], k=3, min_score=0.2, margin=0.15, token_budget=999, count_tokens=_words)
    assert chosen[0] == below
    assert not any(p.named for p in retriever.search("how long does pre-training take?", 8))


def test_a_passage_named_by_one_search_stays_first_when_merged_with_another() -> None:
    """A follow-up is searched twice; a passage one search names keeps its place whatever the other
    scored it, and merged from either side."""
    card = replace(_p(1, 0.2), named=1)
    other = [_p(2, 0.9), replace(card, named=0, rank_score=0.95), _p(3, 0.5)]
    for merged in (merge_found([card, _p(3, 0.5)], other), merge_found(other, [card, _p(3, 0.5)])):
        assert [p.id for p in merged] == ["1", "2", "3"] and merged[0].named


def test_the_last_chunk_of_a_guide_is_not_widened_into_its_card(embedder: Embedder, tmp_path: Path) -> None:
    """Even where the guide's last section has the card's own name."""
    guides = tmp_path / "guides"
    guides.mkdir()
    steps = " ".join(f"Step {i} of the zebra census counts the stripes again." for i in range(12))
    about = "This guide was put together by the zebra census volunteers for new counters."
    (guides / "zebra.md").write_text(f"# Zebras\n\n## Census\n\n{steps}\n\n## About this guide\n\n{about}\n")
    settings = load_settings(index_dir=tmp_path / "index")
    ingest_from_settings(settings, [guides], embedder=embedder)
    retriever = Retriever(FolderStore(tmp_path / "index"), embedder=embedder)
    found = retriever.search("Who wrote the zebra guide for new counters?", 8)
    own, card = (next(p for p in found if p.text.startswith(start)) for start in ("This guide was", "The guide"))
    assert own.section == card.section == "About this guide" and card.position == own.position + 1
    assert retriever.widen([own], token_budget=5000, count_tokens=_words) == [own]
