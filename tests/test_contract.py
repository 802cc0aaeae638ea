"""The answer's JSON contract is one pydantic model family (tutor.contract): `Answer.to_dict` is its
dump, byte for byte the JSON the tutor wrote by hand before, and the API's OpenAPI schema documents
the same classes. In process, with the fake chat model on the real index and embedder."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from pydantic import ValidationError
from starlette.testclient import TestClient

from tutor import Tutor
from tutor.answer import Answer
from tutor.contract import AnswerModel, SentenceModel, SourceModel
from tutor.web.app import create_app

from .conftest import FakeChat


def written_by_hand(answer: Answer) -> dict[str, Any]:
    """The contract as `Answer.to_dict` wrote it before tutor.contract: the oracle of these tests."""
    return {
        "question": answer.question,
        "answer": answer.answer,
        "sources": [
            {
                "n": n,
                "guide": p.guide,
                "path": p.path,
                "section": p.section,
                "text": p.text,
                "score": p.score,
                "planted": list(p.planted),
            }
            for n, p in enumerate(answer.sources, start=1)
        ],
        "attribution": answer.attribution,
        **({"attribution_error": answer.attribution_error} if answer.attribution_error else {}),
        "sentences": [
            {
                "text": s.text,
                "supported_by": list(s.supported_by),
                "support": s.support,
                "layers": s.layers.to_dict() if s.layers else None,
                **({"replaced": s.replaced} if s.replaced else {}),
                **({"quoted": True} if s.quoted else {}),
            }
            for s in answer.sentences
        ],
        "in_scope": answer.in_scope,
        "warnings": list(answer.warnings),
        "timings": answer.timings,
        "model": answer.model,
        "preset": answer.preset,
        "corpus_version": answer.corpus_version,
        "query": answer.query,
        "retrieval": answer.retrieval,
        "prompt": [dict(m) for m in answer.prompt],
    }


def _answers(fake_tutor: tuple[Tutor, FakeChat]) -> list[Answer]:
    """Answers of every shape: from the guides with attribution, without it, retrieval off, out of
    scope (the fixed reply), with an attribution error, and with a sentence whose figure was replaced."""
    tutor, chat = fake_tutor
    chat.replies = [
        ["RLHF trains a reward model", " from human preferences.[1] Then it tunes the model."],
        ["Pre-training comes first.[1]"],
        ["Paris is the capital of France."],
    ]
    guided = tutor.ask("What is RLHF?")
    unexplained = tutor.ask("What comes first in training?", explain=False)
    alone = tutor.ask("What is the capital of France?", retrieval=False, preset="none")
    out_of_scope = tutor.ask("What is the best recipe for lasagne?")
    failed = replace(guided, attribution=None, attribution_error="the model server did not answer")
    first = guided.sentences[0]
    repaired = replace(guided, sentences=(replace(first, replaced="RLHF took 400 years."), *guided.sentences[1:]))
    return [guided, unexplained, alone, out_of_scope, failed, repaired]


def test_to_dict_is_the_json_written_before(fake_tutor: tuple[Tutor, FakeChat]) -> None:
    answers = _answers(fake_tutor)
    assert answers[0].attribution and answers[0].sources and answers[0].sentences
    assert answers[3].in_scope is False and answers[2].in_scope is None
    for answer in answers:
        # Same keys, same order, same values, optional keys left out alike: the same bytes.
        assert json.dumps(answer.to_dict(), ensure_ascii=False) == json.dumps(
            written_by_hand(answer), ensure_ascii=False
        )
    assert "attribution_error" not in answers[0].to_dict() and answers[4].to_dict()["attribution_error"]
    sentences = answers[5].to_dict()["sentences"]
    assert sentences[0]["replaced"] == "RLHF took 400 years." and "replaced" not in sentences[-1]
    assert any(s.quoted for s in answers[0].sentences)  # the guides' sentence quoted under the answer
    assert sentences[-1]["quoted"] is True and "quoted" not in sentences[0]


def test_the_json_validates_against_the_contract(fake_tutor: tuple[Tutor, FakeChat]) -> None:
    for answer in _answers(fake_tutor):
        done = answer.to_dict()
        assert AnswerModel.model_validate(done).to_json_dict() == done


@pytest.mark.parametrize(
    "change",
    [
        {"extra": "a key the contract does not have"},
        {"sources": [{"n": "one", "guide": "g", "path": "p", "section": "s", "text": "t", "score": 0.5}]},
        {"in_scope": "perhaps"},
        {"prompt": [{"role": "user", "content": None}]},
    ],
)
def test_the_contract_refuses_what_it_does_not_say(fake_tutor: tuple[Tutor, FakeChat], change: dict[str, Any]) -> None:
    done = _answers(fake_tutor)[0].to_dict()
    with pytest.raises(ValidationError):
        AnswerModel.model_validate({**done, **change})
    without = {key: value for key, value in done.items() if key != "question"}
    with pytest.raises(ValidationError):
        AnswerModel.model_validate(without)


def test_the_api_documents_and_returns_the_contract(fake_tutor: tuple[Tutor, FakeChat]) -> None:
    tutor, chat = fake_tutor
    chat.replies = [["RLHF trains a reward model from human preferences.[1]"]]
    app = create_app(tutor)
    spec = app.openapi()
    ok = spec["paths"]["/api/ask"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok["$ref"] == "#/components/schemas/AnswerModel"
    schemas = spec["components"]["schemas"]
    for model in (AnswerModel, SourceModel, SentenceModel):
        assert set(schemas[model.__name__]["properties"]) == set(model.model_fields), model.__name__
    assert schemas["AnswerModel"]["properties"]["sources"]["items"] == {"$ref": "#/components/schemas/SourceModel"}
    assert "attribution_error" not in schemas["AnswerModel"]["required"]
    response = TestClient(app).post("/api/ask", json={"question": "What is RLHF?"})
    assert response.status_code == 200, response.text
    assert AnswerModel.model_validate(response.json()).to_json_dict() == response.json()
    assert response.json()["sources"] and response.json()["attribution"]["method"]
