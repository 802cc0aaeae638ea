"""What the page shows, from a real answer's JSON (the browser test drives the page itself)."""

from __future__ import annotations

import json
from pathlib import Path

from tutor import Tutor
from tutor.answer import ACT_REPLY
from tutor.injection import INSTRUCTIONS_REPLY
from tutor.records import Records, user_file_name
from tutor.web.api_docs import docs_html
from tutor.web.render import compare_html, ends_a_sentence, panel_html, verdict
from tutor.web.transcript import (
    QUEUED_TEXT,
    busy_text,
    chat_messages,
    embed_footer,
    export_markdown,
    last_conversation,
    linked_answer,
    recent_questions,
)


def test_citations_link_to_their_passage_in_this_turn() -> None:
    assert linked_answer("RAG adds passages.[2] Done.[1]", 3) == (
        "RAG adds passages.[[2]](#passage-3-2) Done.[[1]](#passage-3-1)"
    )


def test_panel_shows_layers_sentences_passages_and_prompt(real_tutor: Tutor) -> None:
    answer = real_tutor.ask("What is backpropagation used for?").to_dict()
    page = panel_html(answer, 2)
    assert 'data-turn="2"' in page and page.count('class="passage"') == len(answer["sources"])
    assert 'id="passage-2-1"' in page and "Backpropagation" in page
    for label in ("system prompt", "passages", "model&#x27;s own knowledge", "Full prompt sent", "Step by step"):
        assert label in page or label.replace("&#x27;", "'") in page, label
    assert "part-system" in page and "part-passages" in page and "part-question" in page
    assert page.count('<li class="sentence ') == len(answer["sentences"])


def test_pending_attribution_and_verdicts() -> None:
    answer = {
        "question": "Q",
        "answer": "A",
        "in_scope": True,
        "retrieval": True,
        "attribution": None,
        "sources": [],
        "sentences": [],
        "prompt": [],
        "preset": "tutor",
        "query": "Q",
        "timings": {},
    }
    assert "Measuring" in panel_html(answer, 1)
    shares = {"prompt": 0.1, "retrieval": 0.2, "model": 0.7, "method": "m"}
    assert "model's own knowledge" in verdict({**answer, "attribution": shares})
    assert "do not cover" in verdict({**answer, "in_scope": False})
    assert "outside the chat" in verdict({**answer, "in_scope": False, "answer": ACT_REPLY})
    assert "instructions" in verdict({**answer, "in_scope": False, "answer": INSTRUCTIONS_REPLY})
    assert "model alone" in verdict({**answer, "retrieval": False, "preset": "none"})
    # The search query's line says how it was made from the question.
    assert "the question as asked" in panel_html(answer, 1)
    joined = {**answer, "question": "How long?", "query": "What is RAG? RAG adds passages. How long?"}
    assert "joined to the previous question" in panel_html(joined, 1)
    opened = {**answer, "question": "unrelated, but what is RAG?", "query": "what is RAG?"}
    assert "without its opening" in panel_html(opened, 1) and "joined" not in panel_html(opened, 1)
    spelled = {**answer, "question": "what is a base moedl?", "query": "what is a base model?"}
    assert "typing slips corrected" in panel_html(spelled, 1)
    glued = {**answer, "question": "Unrelated:what is RAG?", "query": "what is RAG?"}
    assert "without its opening" in panel_html(glued, 1) and "slips" not in panel_html(glued, 1)
    # The model's Markdown is rendered, any HTML in it escaped.
    column = compare_html("+ both", "**bold** <script>x</script>", {**answer, "attribution": shares})
    assert "<strong>bold</strong>" in column and "<script>" not in column and "layer-bar" in column


def test_export_and_feedback_files(tmp_path: Path) -> None:
    turn = {
        "question": "What is RAG?",
        "answer": "It adds passages.[1]",
        "attribution": {"prompt": 0.0, "retrieval": 0.9, "model": 0.1, "method": "m"},
        "sources": [{"n": 1, "guide": "G", "section": "S", "path": "corpus/g.md", "score": 0.5, "text": "RAG adds."}],
    }
    text = export_markdown([turn])
    assert "## What is RAG?" in text and "1. G › S (corpus/g.md)" in text and "passages 90%" in text
    records = Records(tmp_path / "data")
    records.feedback({"liked": False, "comment": "too short"})
    records.feedback({"liked": True}, user="ann")
    first, second = (json.loads(line) for line in (tmp_path / "data" / "feedback.jsonl").read_text().splitlines())
    assert first["liked"] is False and first["comment"] == "too short" and first["time"] and "user" not in first
    assert second["user"] == "ann"
    records.remember(None, turn)  # an unknown user has no history
    records.remember("../ann", turn)
    assert records.history(None) == [] and records.history("ann") == []
    assert [item["question"] for item in records.history("../ann")] == ["What is RAG?"]
    assert user_file_name("../ann").startswith("_ann-") and user_file_name("a/b") != user_file_name("a_b")
    footer = embed_footer(turn, 2)
    assert "<summary>Sources: [1]</summary>" in footer and "[1] G › S" in footer and 'id="passage-2-1"' in footer
    assert "Shaped by:" in footer and "passages 90%" in footer
    related = embed_footer({**turn, "sources": [{**turn["sources"][0], "score": 0.1}]})
    assert "Related passages: [1]" in related and "(related)" in related


def test_busy_text_says_how_many_are_ahead() -> None:
    assert "1 question ahead of you" in busy_text(1) and "3 questions ahead" in busy_text(3)


def _source(n: int, score: float) -> dict[str, object]:
    return {"n": n, "guide": "G", "section": "S", "path": "g.md", "text": f"passage {n}", "score": score}


def test_panel_speaks_plain_words_and_keeps_related_passages_apart() -> None:
    answer = {
        "question": "What is RAG?",
        "answer": "RAG adds passages.[1]",
        "in_scope": True,
        "retrieval": True,
        "attribution": {"prompt": 0.1, "retrieval": 0.8, "model": 0.1, "method": "log-likelihood ablation"},
        "sources": [_source(1, 0.55), _source(2, 0.18)],
        "sentences": [{"text": "RAG adds passages.", "supported_by": [1], "support": 0.68, "layers": None}],
        "prompt": [],
        "preset": "tutor",
        "query": "What is RAG?",
        "timings": {},
    }
    page = panel_html(answer, 3, min_score=0.2)
    plain, figures = page.split('<details class="figures">')
    assert "“What is RAG?”" in plain and "0.68" not in plain and "likelihood" not in plain and "similarity" not in plain
    assert "support 0.68" in figures and "similarity 0.18: related" in figures and "log-likelihood" in figures
    sources, related = plain.split('<details class="related">')
    assert 'id="passage-3-1"' in sources and 'id="passage-3-2"' not in sources
    assert "Sources from the guides (1)" in sources and 'id="passage-3-2"' in related
    column = compare_html("+ both", "It adds", answer, 3, cut=True)
    assert "cut at 40 tokens" in column and 'class="drawer"' in column and 'id="passage-c3-1"' in column


def test_sentence_ends_and_the_chat_with_a_line() -> None:
    assert ends_a_sentence("It adds passages.[1]") and ends_a_sentence("Done!") and ends_a_sentence("(see [2].)")
    assert not ends_a_sentence("It adds passages to the") and not ends_a_sentence("the layers are [1")
    answers = [{"question": "Q1", "answer": "A1.[1]", "retrieval": False}]
    chat = chat_messages(answers, current=("Q2", "Half"), waiting=["Q3"])
    assert [m["content"] for m in chat] == ["Q1", "A1.[[1]](#passage-1-1)", "Q2", "Half", "Q3", QUEUED_TEXT]


def test_the_last_conversation_and_recent_questions() -> None:
    history = [
        {"question": "Old", "answer": "a", "conversation": "c1"},
        {"question": "What is RAG?", "answer": "b", "conversation": "c2"},
        {"question": "And RLHF?", "answer": "c", "conversation": "c2"},
        {"question": "What is RAG?", "answer": "d", "conversation": "c2"},
    ]
    conversation, answers = last_conversation(history)
    assert conversation == "c2" and [a["answer"] for a in answers] == ["b", "c", "d"]
    assert all(a["restored"] and a["sources"] == [] for a in answers)
    assert "not kept in your history" in panel_html(answers[0], 1)
    assert recent_questions(history) == [["What is RAG?"], ["And RLHF?"], ["Old"]]
    assert last_conversation([{"question": "x", "answer": "y"}]) == (None, [])


def test_docs_page_lists_routes_and_fields() -> None:
    spec = {
        "info": {"description": "Answers."},
        "paths": {
            "/api/ask": {
                "post": {
                    "description": "Ask <b>it</b>.",
                    "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/R"}}}},
                    "responses": {"200": {"description": "OK"}},
                }
            }
        },
        "components": {
            "schemas": {"R": {"required": ["question"], "properties": {"question": {"type": "string", "maxLength": 9}}}}
        },
    }
    page = docs_html(spec, "/openapi.json")
    assert "<code>/api/ask</code>" in page and "at most 9 characters" in page and "(required)" in page
    assert "Ask &lt;b&gt;it&lt;/b&gt;." in page and "http" not in page.replace("http-equiv", "")
