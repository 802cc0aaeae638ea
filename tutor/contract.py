"""The JSON contract of an answer (DESIGN.md), written once.

`Answer.to_dict` (what `--json` prints, the API returns and the page keeps) is a dump of
`AnswerModel`, and the server documents its responses with the same classes, so that the
OpenAPI schema cannot drift from what is sent. Optional keys are left out when they have
nothing to say, as the contract always did: an answer's `attribution_error` and a sentence's
`replaced`. No web imports here: the core builds the contract, the front ends only read it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from .answer import Answer


def _absent(value: Any) -> bool:
    return not value


class ContractModel(BaseModel):
    """Every key of the contract is known: an unknown one is a bug in the writer, not data."""

    model_config = ConfigDict(extra="forbid")


class SourceModel(ContractModel):
    """A passage put in the prompt, numbered as the answer cites it."""

    n: int = Field(description="The number the answer cites it by: [n].")
    guide: str
    path: str
    section: str
    text: str
    score: float = Field(description="Cosine similarity of question and passage, 0..1.")
    planted: list[str] = Field(default_factory=list, description="Sentences left out of the prompt (injection).")


class SentenceModel(ContractModel):
    """One sentence of the answer, the passages that support it, and the layers that shaped it."""

    text: str
    supported_by: list[int]
    support: float | None
    layers: dict[str, float] | None
    replaced: str | None = Field(
        None,
        exclude_if=_absent,
        description=(
            "The model's own sentence, when the guides' sentence replaced it: a figure not the guides', "
            "two layers compared the other way round from their guide lines, or an opening Yes or No (said "
            "or implied by repeating the question's claim) the guides contradict (present only then)."
        ),
    )
    quoted: bool = Field(
        False,
        exclude_if=_absent,
        description=(
            "One of the guides' own sentences quoted under the answer, not the model's (present only then); "
            "“… ” in front marks one that goes on from a sentence the answer already says."
        ),
    )


class AnswerModel(ContractModel):
    """The JSON contract of DESIGN.md: the answer, its sources, and the layers that shaped it."""

    question: str
    answer: str
    sources: list[SourceModel]
    attribution: dict[str, float | str] | None
    attribution_error: str | None = Field(
        None, exclude_if=_absent, description="Why the attribution could not be measured (present only then)."
    )
    sentences: list[SentenceModel]
    in_scope: bool | None
    warnings: list[str] = Field(default_factory=list, description="Prompt injection noticed, in plain words.")
    timings: dict[str, float | None]
    model: str
    preset: str
    corpus_version: str
    query: str
    retrieval: bool
    prompt: list[dict[str, str]]

    @classmethod
    def from_answer(cls, answer: Answer) -> AnswerModel:
        """The contract of one answer (the query, corpus version and prompt sent included)."""
        return cls(
            question=answer.question,
            answer=answer.answer,
            sources=[
                SourceModel(
                    n=n,
                    guide=p.guide,
                    path=p.path,
                    section=p.section,
                    text=p.text,
                    score=p.score,
                    planted=list(p.planted),
                )
                for n, p in enumerate(answer.sources, start=1)
            ],
            attribution=answer.attribution,
            attribution_error=answer.attribution_error,
            sentences=[
                SentenceModel(
                    text=s.text,
                    supported_by=list(s.supported_by),
                    support=s.support,
                    layers=s.layers.to_dict() if s.layers else None,
                    replaced=s.replaced,
                    quoted=s.quoted,
                )
                for s in answer.sentences
            ],
            in_scope=answer.in_scope,
            warnings=list(answer.warnings),
            timings=answer.timings,
            model=answer.model,
            preset=answer.preset,
            corpus_version=answer.corpus_version,
            query=answer.query,
            retrieval=answer.retrieval,
            prompt=[dict(m) for m in answer.prompt],
        )

    def to_json_dict(self) -> dict[str, Any]:
        """The contract as a JSON-ready dict, in the contract's key order, absent keys left out."""
        return self.model_dump()
