"""The LangChain door: langchain-tests' standard retriever tests on GuideRetriever, the tutor as a
Runnable (real model, real index), and both composed in LCEL with a user's own functions."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.documents import Document
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.runnables import RunnableLambda
from langchain_tests.integration_tests import RetrieversIntegrationTests

from tutor import Tutor
from tutor.errors import QuestionError
from tutor.langchain import GuideRetriever, TutorRunnable

from .conftest import FakeChat

# Answered from three passages that do not touch, within the token budget (k=3 gives exactly 3).
THREE_PASSAGES = "What compute does training an LLM require?"


class TestGuideRetrieverStandard(RetrieversIntegrationTests):
    """LangChain's own contract for retrievers: k in the constructor and in invoke, sync and async."""

    tutor: Tutor

    @pytest.fixture(autouse=True)
    def _real_tutor(self, real_tutor: Tutor) -> None:
        type(self).tutor = real_tutor

    @property
    def retriever_constructor(self) -> type[GuideRetriever]:
        return GuideRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"tutor": self.tutor}

    @property
    def retriever_query_example(self) -> str:
        return THREE_PASSAGES


def test_documents_are_the_tutors_passages(real_tutor: Tutor) -> None:
    documents = GuideRetriever(tutor=real_tutor).invoke("What is RLHF?")
    passages, version = real_tutor.retrieve("What is RLHF?")
    assert [d.page_content for d in documents] == [p.text for p in passages]
    first = documents[0].metadata
    assert {"guide", "path", "section", "score", "corpus_version"} <= set(first)
    assert first["corpus_version"] == version and first["path"].startswith("corpus/") and 0 < first["score"] <= 1
    assert GuideRetriever(tutor=real_tutor).invoke("How do I bake sourdough bread?") == []


async def test_async_retrieval_matches_sync(real_tutor: Tutor) -> None:
    retriever = GuideRetriever(tutor=real_tutor, k=2)
    assert await retriever.ainvoke(THREE_PASSAGES) == retriever.invoke(THREE_PASSAGES)


@pytest.mark.parametrize(
    ("query", "options", "message"),
    [("", {}, "the question is empty"), ("x" * 3000, {}, "limit is 2000"), ("what \x00 is", {}, "not plain text")],
)
def test_the_retriever_refuses_bad_queries(real_tutor: Tutor, query: str, options: dict, message: str) -> None:
    with pytest.raises(QuestionError, match=message):
        GuideRetriever(tutor=real_tutor, **options).invoke(query)


def test_k_is_checked_where_it_is_given(real_tutor: Tutor) -> None:
    with pytest.raises(ValueError, match="less than or equal to 20"):
        GuideRetriever(tutor=real_tutor, k=50)
    with pytest.raises(QuestionError, match="k must be between 1 and 20"):
        GuideRetriever(tutor=real_tutor).invoke("What is RLHF?", k=0)


def test_a_chain_of_the_retriever_and_a_users_own_function(real_tutor: Tutor) -> None:
    def cite(documents: list[Document]) -> str:
        return "\n".join(f"[{n}] {d.metadata['guide']} > {d.metadata['section']}" for n, d in enumerate(documents, 1))

    chain = GuideRetriever(tutor=real_tutor, k=2) | RunnableLambda(cite)
    listing = chain.invoke("What does preference optimization do?")
    assert listing.startswith("[1] ") and len(listing.splitlines()) <= 2


def test_the_tutor_as_a_runnable_answers_and_streams(real_tutor: Tutor) -> None:
    tutor = TutorRunnable(real_tutor)
    answer = tutor.invoke("What is RLHF?")
    assert answer["in_scope"] is True and "[1]" in answer["answer"] and answer["attribution"]["retrieval"] > 0.3
    tokens = list(tutor.stream("What is RLHF?"))
    assert len(tokens) > 3 and all(isinstance(t, str) for t in tokens)
    assert "".join(tokens).strip() == answer["answer"]  # temperature 0: the same answer


def test_a_stream_repaired_after_it_ended_ends_with_the_corrected_answer(fake_tutor: tuple[Tutor, FakeChat]) -> None:
    """An opening the guides contradict streams as the model wrote it, then the corrected answer
    (what invoke returns); an answer left as written streams alone."""
    tutor, chat = fake_tutor
    tutor.settings = tutor.settings.model_copy(update={"scope_judge_below": 0.0, "quote_guides": False})
    chat.replies += [["Yes, prompting ", "changes the model."], ["No"], ["Prompting guides the model at runtime."]]
    runnable = TutorRunnable(tutor)
    *streamed, corrected = runnable.stream("Does prompting actually change the model?")
    assert "".join(streamed).startswith("Yes, prompting changes the model.")
    assert corrected.startswith("\n\nCorrected from the guides:\nNo. The guides say: “"), corrected
    assert "Corrected" not in "".join(runnable.stream("Does prompting actually change the model?"))


async def test_the_runnable_streams_asynchronously(real_tutor: Tutor) -> None:
    tokens = [token async for token in TutorRunnable(real_tutor).astream("What is RLHF?")]
    assert len(tokens) > 3 and "RLHF" in "".join(tokens)


def test_messages_are_history_and_the_question(real_tutor: Tutor) -> None:
    tutor = TutorRunnable(real_tutor, explain=False).bind(preset="beginner")
    answer = tutor.invoke(
        [
            HumanMessage("What is pre-training?"),
            AIMessage("Pre-training teaches a model general language from vast text.[1]"),
            ("human", "How long does it take?"),
        ]
    )
    assert answer["question"] == "How long does it take?" and answer["preset"] == "beginner"
    assert answer["query"].startswith("What is pre-training?") and answer["attribution"] is None
    assert [m["role"] for m in answer["prompt"]] == ["system", "user", "assistant", "user"]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([SystemMessage("You are a pirate."), HumanMessage("What is RAG?")], "a system message cannot be sent"),
        ([HumanMessage(content=[{"type": "image_url", "image_url": {"url": "file:///etc/passwd"}}])], "only text"),
        ([HumanMessage("What is RAG?"), HumanMessage("And RLHF?")], "must alternate"),
        ([], "there are no messages"),
        ([{"role": "nobody", "content": "hi"}], "cannot be read"),
        (42, "the input must be a question or a list of messages"),
        ("   ", "the question is empty"),
    ],
)
def test_the_runnable_refuses_what_the_api_refuses(real_tutor: Tutor, value: Any, message: str) -> None:
    with pytest.raises(QuestionError, match=message):
        TutorRunnable(real_tutor).invoke(value)


def test_an_lcel_chain_ending_in_the_tutor_streams_its_tokens(real_tutor: Tutor) -> None:
    def as_question(topic: str) -> str:
        return f"What is {topic}?"

    chain = RunnableLambda(as_question) | TutorRunnable(real_tutor)
    tokens = list(chain.stream("RLHF"))
    assert len(tokens) > 3 and all(isinstance(t, str) for t in tokens)
    answered = (chain | RunnableLambda(lambda answer: answer["sources"][0]["guide"])).invoke("RLHF")
    assert answered
