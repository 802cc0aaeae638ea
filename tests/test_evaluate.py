"""`tutor eval`: the fixed tune / hold-out split, the question format, the scores and the printed halves."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tutor.answer import Answer
from tutor.cli import run
from tutor.embed import Embedder
from tutor.errors import TutorError
from tutor.evaluate import (
    answer_words,
    compare_runs,
    format_comparison,
    half_of,
    load_questions,
    load_run,
    select_half,
    sign_test,
    source_hit,
)
from tutor.llm import Message
from tutor.retrieve import Passage

from .conftest import ROOT, tutor_with

QUESTIONS = ROOT / "eval" / "questions.jsonl"


def test_the_split_is_fixed_by_the_id_alone() -> None:
    # Pinned: the halves must not move between runs, machines or Python versions (hash() is salted).
    assert [half_of(i) for i in ("a", "s01", "f01", "o01", "p01", "x04", "q01")] == [
        "tune", "holdout", "holdout", "holdout", "tune", "holdout", "tune",
    ]  # fmt: skip
    assert half_of(7) == half_of("7")  # a number id is read as its text
    questions = load_questions(QUESTIONS)
    again = load_questions(QUESTIONS)
    assert [half_of(q["id"]) for q in questions] == [half_of(q["id"]) for q in again]
    # Adding or reordering questions moves no other question to the other half.
    shuffled = list(reversed(questions)) + [{"id": "new", "question": "?"}]
    tune = {q["id"] for q in select_half(questions, "tune")}
    assert {q["id"] for q in select_half(shuffled, "tune")} - {"new"} == tune


def test_the_halves_of_the_shipped_set_partition_it() -> None:
    questions = load_questions(QUESTIONS)
    tune, holdout = select_half(questions, "tune"), select_half(questions, "holdout")
    assert len(tune) == 30 and len(holdout) == 17 and len(questions) == 47
    assert {q["id"] for q in tune}.isdisjoint(q["id"] for q in holdout)
    assert select_half(questions, "all") == questions
    for half in (tune, holdout):  # each half has ordinary questions, follow-ups and off-topic ones
        assert any(not q.get("out_of_scope") and not q.get("history") for q in half)
        assert any(q.get("history") for q in half) and any(q.get("out_of_scope") for q in half)
    with pytest.raises(TutorError, match="unknown half 'test'"):
        select_half(questions, "test")


def test_question_format_of_every_set(tmp_path: Path) -> None:
    lines = [
        # the paraphrase set: no source_phrase, and an off-topic question asked mid-conversation
        {"id": "x01", "question": "How do I apply for annual leave?", "facts": [], "out_of_scope": True},
        {"id": "x04", "question": "And the weather?", "history": [["How long?", "Days."]], "out_of_scope": True},
        {"id": "s1", "question": "What is RAG?", "facts": [["retriev"]], "source_phrase": None},
    ]
    path = tmp_path / "q.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n\n")
    assert [q["id"] for q in load_questions(path)] == ["x01", "x04", "s1"]
    for bad, message in [
        ({"id": "h", "question": "?", "history": [["only one"]]}, "'history' must be a list of"),
        ({"id": "h", "question": "?", "history": "What is RAG?"}, "'history' must be a list of"),
        ({"question": "no id"}, "each line needs an 'id' and a 'question'"),
        ({"id": "s1", "question": "again"}, "the id 's1' is used twice"),
    ]:
        path.write_text(json.dumps(lines[2]) + "\n" + json.dumps(bad) + "\n")
        with pytest.raises(TutorError, match=re.escape(f"{path}:2: {message}")):
            load_questions(path)


def test_source_phrase_as_text_or_as_a_pattern() -> None:
    text = "Cost: $10M-$100M+ and trillions of tokens."
    passage = Passage(id="1", text=text, guide="g", path="p", section="Pre-training", position=0, score=0.9)
    answer = Answer(
        question="q",
        answer="a",
        sources=(passage,),
        sentences=(),
        in_scope=True,
        timings={},
        model="m",
        preset="tutor",
        corpus_version="v",
        query="q",
        retrieval=True,
    )
    assert source_hit(answer, "$10M-$100M+")  # not a valid pattern for what it means; found as text
    assert source_hit(answer, "Terabytes|Trillions of tokens")  # an alternation, as eval/questions.jsonl writes it
    assert source_hit(answer, "pre-training") and not source_hit(answer, "fine-tuning")
    assert not source_hit(answer, "(unclosed")


def test_answer_words_leave_out_citation_markers() -> None:
    assert answer_words("Pre-training takes months [1]. It costs $10M-$100M+ [2] - a lot.") == 8
    assert answer_words("") == 0


class EchoChat:
    """Answers every question with a fixed sentence; counts what it was asked."""

    name = "echo"

    def __init__(self) -> None:
        self.questions: list[str] = []

    def stream(self, messages: list[Message], *, max_tokens: int, temperature: float, **_: Any) -> Iterator[str]:
        self.questions.append(messages[-1]["content"])
        yield "Pre-training takes months of GPU compute [1]."

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def token_logprobs(self, messages: list[Message], answer: str, **_: Any) -> list[tuple[str, float]]:
        return [(piece, math.log(0.5)) for piece in re.findall(r"\S+\s*", answer)]


@pytest.fixture
def echo_tutor(index_copy: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch) -> EchoChat:
    """`tutor eval` on the real index and embedder, with EchoChat in place of the model."""
    chat = EchoChat()
    tutor = tutor_with(chat, index_copy, embedder)
    # The scoring is tested on the echoed text alone: a quote from the guides would add facts to it.
    tutor.settings = tutor.settings.model_copy(update={"quote_guides": False})
    monkeypatch.setattr("tutor.factory.build_tutor", lambda settings, retrieval=True: tutor)
    return chat


def _write_set(path: Path) -> None:
    items = [
        {"id": "p01", "question": "How long does pre-training take?", "facts": [["month"]], "source_phrase": "months"},
        {"id": "q01", "question": "What does it cost?", "history": [["What is pre-training?", "A base model."]],
         "facts": [["\\$10M", "million"]], "source_phrase": "$10M-$100M+"},
        {"id": "x02", "question": "Who won the football world cup in 2010?", "facts": [], "out_of_scope": True},
        {"id": "s01", "question": "How long does pre-training take, roughly?", "facts": [["month"], ["year"], ["day"]],
         "source_phrase": "months"},
        {"id": "o01", "question": "What is the capital of Australia?", "facts": [], "out_of_scope": True},
    ]  # fmt: skip
    assert [half_of(item["id"]) for item in items] == ["tune", "tune", "holdout", "holdout", "holdout"]
    path.write_text("".join(json.dumps(item) + "\n" for item in items))


def test_eval_prints_both_halves_and_all(
    echo_tutor: EchoChat, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    questions, out = tmp_path / "set.jsonl", tmp_path / "out.jsonl"
    _write_set(questions)
    assert run(["eval", str(questions), "--out", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith(f"{questions}: 5 questions (tune 2, hold-out 3); answered 5; model echo")
    assert printed[1].split() == ["tune", "hold-out", "all"]
    rows = {line[:24].strip(): line[24:].split() for line in printed[2:]}
    assert rows["questions"] == ["2", "3", "5"]
    # found: p01 1 of 1, q01 0 of 1 (no cost), s01 1 of 3 (months, not years or days)
    assert rows["fact recall (facts)"] == ["0.500", "(2)", "0.333", "(3)", "0.400", "(5)"]
    assert rows["recall per question"] == ["0.500", "0.333", "0.444"]  # (1 + 0 + 1/3) / 3
    assert rows["out of scope flagged"] == ["0/0", "2/2", "2/2"]
    assert rows["in scope refused"] == ["0/2", "0/1", "0/3"]
    # "[1]" is not a word; q01's duration, given for a cost, is replaced by the guide line (10 words)
    assert rows["answer words p50"] == ["8", "6", "6"]
    assert set(rows) >= {"source hit (questions)", "first token p50 / p95 s", "answer p50 / p95 s"}
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["id"], r["half"], r["words"]) for r in records][:2] == [("p01", "tune", 6), ("q01", "tune", 10)]
    assert [r["out_of_scope"] for r in records] == [False, False, True, False, True]  # for `tutor compare`
    assert len(echo_tutor.questions) == 3  # the two off-topic questions never reach the model


def test_eval_one_half_never_answers_the_other(
    echo_tutor: EchoChat, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    questions, out = tmp_path / "set.jsonl", tmp_path / "out.jsonl"
    _write_set(questions)
    assert run(["eval", str(questions), "--half", "tune", "--out", str(out)]) == 0
    printed = capsys.readouterr()
    assert "answered 2;" in printed.out and printed.out.splitlines()[1].split() == ["tune"]
    assert "hold-out  " not in printed.out and "s01" not in printed.err and "o01" not in printed.err
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == ["p01", "q01"]
    assert not any("roughly" in question for question in echo_tutor.questions)

    assert run(["eval", str(questions), "--half", "holdout", "--out", str(out)]) == 0
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == ["x02", "s01", "o01"]
    assert capsys.readouterr().out.splitlines()[1].split() == ["hold-out"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--half", "both"], "Invalid value for '--half'"),
        (["--half", ""], "Invalid value for '--half'"),
    ],
)
def test_eval_refuses_a_bad_half(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    questions = tmp_path / "set.jsonl"
    _write_set(questions)
    assert run(["eval", str(questions), "--out", str(tmp_path / "out.jsonl"), *args]) != 0
    assert message in capsys.readouterr().err


def test_the_sign_test_counts_only_questions_that_moved() -> None:
    assert sign_test(0, 0) == 1.0
    assert sign_test(3, 4) == 1.0
    assert sign_test(5, 0) == sign_test(0, 5) == 2 / 32
    assert sign_test(10, 1) == 2 * (1 + 10 + 1) / 2**11 == pytest.approx(0.0117, abs=1e-4)


def test_compare_reads_two_runs_of_the_same_set(
    echo_tutor: EchoChat, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    questions, before, after = tmp_path / "set.jsonl", tmp_path / "before", tmp_path / "after"
    _write_set(questions)
    before.mkdir()
    after.mkdir()
    assert run(["eval", str(questions), "--out", str(before / "out-set.jsonl")]) == 0
    records = [json.loads(line) for line in (before / "out-set.jsonl").read_text().splitlines()]
    changed = {r["id"]: dict(r) for r in records}
    changed["p01"].update(facts_found=[False], words=40)  # tune: one question loses its fact, same text
    changed["s01"].update(facts_found=[True, True, True], answer="other words")  # hold-out: gains two
    changed["x02"].update(in_scope=True, words=99)  # an off-topic question now answered, at length
    (after / "out-set.jsonl").write_text("".join(json.dumps(r) + "\n" for r in changed.values()))
    (after / "out-other.jsonl").write_text(json.dumps(records[0] | {"id": "new"}) + "\n")  # in one run only
    capsys.readouterr()

    assert run(["compare", str(before), str(after)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[1].split() == ["tune", "hold-out", "all"]
    rows = {line[:26].strip(): line[26:].split() for line in printed[2:9]}
    assert rows["questions in both"] == ["2", "3", "5"]
    assert rows["facts found"] == ["1", "->", "0", "1", "->", "3", "2", "->", "3"]
    assert rows["questions gained / lost"] == ["0", "/", "1", "1", "/", "0", "1", "/", "1"]
    assert rows["sign test p"] == ["1.000", "1.000", "1.000"]
    assert rows["scope decisions changed"] == ["0", "1", "1"]
    assert rows["same answer, in scope"] == ["2/2", "0/1", "2/3"]  # facts are counted apart from the text
    # Words are of the questions in scope: x02's 99 words count nowhere; s01's are the same both times.
    s01 = str(changed["s01"]["words"])
    all_before, all_after = sorted([6, 10, int(s01)])[1], sorted([40, 10, int(s01)])[1]
    assert rows["answer words p50"] == ["8", "->", "25", s01, "->", s01, str(all_before), "->", str(all_after)]
    assert "left out: 0 answers in the first run only, 1 in the second only" in printed[-1]


def test_compare_reads_scope_from_either_run_and_says_when_none_is_in_scope(tmp_path: Path) -> None:
    """A run written before runs said which questions are off-topic is read as all in scope; the
    other run's label still keeps an off-topic question out of the words."""
    old, new = tmp_path / "old.jsonl", tmp_path / "new.jsonl"
    line = {"id": "x02", "facts_found": [], "words": 5, "answer": "The guides do not cover this."}
    old.write_text(json.dumps(line) + "\n")
    new.write_text(json.dumps(line | {"out_of_scope": True}) + "\n")
    compared = compare_runs(load_run(old), load_run(new))
    assert compared["halves"]["holdout"]["in_scope"] == 0
    assert compared["halves"]["holdout"]["words_before"] is None
    assert "answer words p50" in (table := format_comparison(compared)) and "- -> -" in table


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", "out.jsonl:2: not JSON"),
        ("[" * 100_000, "out.jsonl:2: not JSON"),
        ('["a"]', "out.jsonl:2: not a line of `tutor eval --out` (no id)"),
        ('{"id": true, "facts_found": [], "words": 3, "answer": ""}', "(no id)"),
        ('{"id": "a", "words": 3, "answer": ""}', "'facts_found' must be a list of true and false"),
        ('{"id": "a", "facts_found": ["no"], "words": 3, "answer": ""}', "'facts_found' must be a list"),
        ('{"id": "a", "facts_found": [], "words": 1e400, "answer": ""}', "'words' must be a whole number"),
        ('{"id": "a", "facts_found": [], "words": 3.9, "answer": ""}', "'words' must be a whole number"),
        ('{"id": "a", "facts_found": [], "words": true, "answer": ""}', "'words' must be a whole number"),
        ('{"id": "a", "facts_found": [], "words": 3}', "'answer' must be text"),
        ('{"id": "p01", "facts_found": [], "words": 3, "answer": ""}', "the id 'p01' comes twice"),
    ],
)
def test_compare_refuses_what_is_not_a_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], line: str, message: str
) -> None:
    good = json.dumps({"id": "p01", "facts_found": [True], "words": 3, "answer": "months"})
    run_file = tmp_path / "out.jsonl"
    run_file.write_text(f"{good}\n{line}\n")
    with pytest.raises(TutorError, match=re.escape(message)):
        load_run(run_file)
    assert run(["compare", str(run_file), str(run_file)]) == 1
    error = capsys.readouterr().err
    assert error.startswith("error: ") and message in error and "Traceback" not in error


def test_compare_refuses_runs_it_cannot_pair(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = json.dumps({"id": "p01", "facts_found": [True], "words": 3, "answer": "months"})
    one, other, empty_file, folder = (tmp_path / name for name in ("one.jsonl", "other.jsonl", "empty.jsonl", "runs"))
    one.write_text(good + "\n")
    empty_file.write_text("\n")
    folder.mkdir()
    assert run(["compare", str(folder), str(folder)]) == 1
    assert "no run files" in capsys.readouterr().err
    assert run(["compare", str(empty_file), str(one)]) == 1
    assert "no answers in it" in capsys.readouterr().err
    (folder / "set.jsonl").write_text(good + "\n")
    assert run(["compare", str(folder), str(one)]) == 1
    assert "compare two folders of runs, or two run files of one set" in capsys.readouterr().err
    other.write_text(json.dumps({"id": "zz", "facts_found": [], "words": 1, "answer": ""}) + "\n")
    assert run(["compare", str(one), str(other)]) == 1
    assert "share no question" in capsys.readouterr().err
    other.write_text(good.replace("[true]", "[false]") + "\n")  # two files of one set, named apart
    assert run(["compare", str(one), str(other)]) == 0
    assert "1 -> 0" in capsys.readouterr().out
