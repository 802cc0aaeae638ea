"""The tutor for LangChain users: its retriever as a `BaseRetriever`, the tutor as a `Runnable`.

An optional extra (`pip install tutor[langchain]`); both are thin over the core. The retriever
runs the tutor's own retrieval (`Tutor.retrieve`: search, select, widen), so a user's chain gets
the passages the tutor would have put in its prompt, with the sentences that read as
instructions to a model left out of the text, as the tutor's prompt leaves them out.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Generator, Iterator, Sequence
from typing import Any, cast

try:
    from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
    from langchain_core.documents import Document
    from langchain_core.messages import BaseMessage, ChatMessage, convert_to_messages
    from langchain_core.retrievers import BaseRetriever
    from langchain_core.runnables import Runnable, RunnableConfig
    from pydantic import ConfigDict, Field
except ImportError as exc:  # pragma: no cover - the extra is part of the test install
    raise ImportError("tutor.langchain needs LangChain: pip install 'tutor[langchain]'") from exc

from .answer import Answered, Token, Tutor, check_question, correction
from .config import K_MAX, K_MIN
from .conversation import split_messages
from .errors import QuestionError
from .injection import without_planted
from .retrieve import Passage, Turn

HISTORY_LIMIT = 100  # earlier turns a messages list may carry, as on the HTTP API


def passage_document(passage: Passage, corpus_version: str) -> Document:
    """A passage as a LangChain Document: the text the prompt would get, and where it is from."""
    return Document(
        id=passage.id,
        page_content=without_planted(passage.text, passage.planted),
        metadata={
            "guide": passage.guide,
            "path": passage.path,
            "section": passage.section,
            "position": passage.position,
            "score": passage.score,
            "corpus_version": corpus_version,
            "planted": list(passage.planted),
        },
    )


class GuideRetriever(BaseRetriever):
    """The passages from the guides that the tutor would put in its prompt for a query.

    `k` is the most passages (the tutor's `k` setting when unset); fewer come back when fewer
    are near the best one or the token budget is spent, and none when the guides do not
    cover the query. `invoke(query, k=1)` overrides it for one call.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    tutor: Tutor = Field(exclude=True)
    k: int | None = Field(default=None, ge=K_MIN, le=K_MAX)

    def _search(self, query: str, k: int | None) -> list[Document]:
        query = check_question(query, self.tutor.settings.max_question_chars)
        passages, corpus_version = self.tutor.retrieve(query, k=k if k is not None else self.k)
        return [passage_document(p, corpus_version) for p in passages]

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, k: int | None = None
    ) -> list[Document]:
        return self._search(query, k)

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, k: int | None = None
    ) -> list[Document]:
        # The search holds a lock and embeds on the CPU: a thread keeps the event loop free.
        return await asyncio.to_thread(self._search, query, k)


def conversation(value: str | Sequence[Any]) -> tuple[list[Turn], str]:
    """(history, question) from a question, or from messages (LangChain messages, ("human", text)
    tuples or {"role", "content"} dicts): the rules of tutor.conversation."""
    if isinstance(value, str):
        return [], value
    if not isinstance(value, Sequence):
        raise QuestionError("the input must be a question or a list of messages")
    try:
        messages: list[BaseMessage] = convert_to_messages(value)
    except (ValueError, TypeError, NotImplementedError) as exc:
        raise QuestionError(f"the messages cannot be read: {str(exc)[:200]}") from None
    pairs = [(m.role if isinstance(m, ChatMessage) else m.type, m.content) for m in messages]
    return split_messages(pairs, max_turns=HISTORY_LIMIT)


class TutorRunnable(Runnable[Any, dict[str, Any]]):
    """The tutor as a LangChain Runnable.

    Input: a question, or a list of messages (earlier turns, then the question). `invoke`
    returns the answer as the JSON contract's dict (sources, per-sentence support and, unless
    `explain=False`, the layer attribution); `stream` yields the answer's text as it is
    generated. Options (`preset`, `retrieval`, `k`, `explain`) are set here or with `.bind()`.
    """

    OPTIONS = frozenset({"preset", "retrieval", "k", "explain"})

    def __init__(self, tutor: Tutor, **options: Any) -> None:
        self.tutor = tutor
        self.options = self._checked(options)

    def _checked(self, options: dict[str, Any]) -> dict[str, Any]:
        unknown = set(options) - self.OPTIONS
        if unknown:
            raise QuestionError(
                f"unknown options: {', '.join(sorted(unknown))}; the options are {sorted(self.OPTIONS)}."
            )
        return options

    @property
    def InputType(self) -> Any:  # noqa: N802 (LangChain's name)
        return str | list[Any]

    @property
    def OutputType(self) -> Any:  # noqa: N802
        return dict[str, Any]

    def _answer(self, value: Any, **options: Any) -> dict[str, Any]:
        history, question = conversation(value)
        options = {**self.options, **self._checked(options)}
        return self.tutor.ask(question, history, **options).to_dict()

    def _tokens(self, values: Iterator[Any], **options: Any) -> Iterator[str]:
        history, question = conversation(next(iter(values)))
        options = {**self.options, **self._checked(options), "explain": False}
        streamed = ""
        for event in self.tutor.stream(question, history, **options):
            if isinstance(event, Token):
                streamed += event.text
                yield event.text
            elif isinstance(event, Answered):
                if corrected := correction(streamed, event.answer):
                    yield corrected
                return

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> dict[str, Any]:  # noqa: A002
        return self._call_with_config(lambda value: self._answer(value, **kwargs), input, config)

    def stream(  # type: ignore[override]  # its chunks are text, not pieces of the dict
        self,
        input: Any,  # noqa: A002
        config: RunnableConfig | None = None,
        **kwargs: Any,
    ) -> Generator[str, None, None]:
        """The answer's text as it is generated. When a sentence was replaced by the guides' own
        after streaming, the corrected answer follows (as the OpenAI stream and `tutor ask` do);
        `invoke` returns only the corrected answer, whose `warnings` say what was replaced."""
        tokens: Any = lambda values: self._tokens(values, **kwargs)  # noqa: E731
        yield from cast(Iterator[str], self._transform_stream_with_config(iter([input]), tokens, config))

    async def astream(  # type: ignore[override]
        self,
        input: Any,  # noqa: A002
        config: RunnableConfig | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[str]:
        """`stream` in a thread of its own, each token handed to the event loop as it comes."""
        tokens = self.stream(input, config, **kwargs)
        done = object()
        try:
            while (token := await asyncio.to_thread(next, tokens, done)) is not done:
                yield token  # type: ignore[misc]
        finally:
            tokens.close()
