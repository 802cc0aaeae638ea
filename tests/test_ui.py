"""What the page shows, from a real answer's JSON (the browser test drives the page itself)."""

from __future__ import annotations

import json
from pathlib import Path

from tutor import Tutor
from tutor.ops import Records, user_file_name
from tutor.ui import busy_text, compare_html, embed_footer, export_markdown, linked_answer, panel_html, verdict


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
    assert "model alone" in verdict({**answer, "retrieval": False, "preset": "none"})
    # The model's Markdown is rendered, any HTML in it escaped.
    column = compare_html("+ both", "**bold** <script>x</script>", {**answer, "attribution": shares})
    assert "<strong>bold</strong>" in column and "<script>" not in column and "layer-bar" in column


def test_export_and_feedback_files(tmp_path: Path) -> None:
    turn = {
        "question": "What is RAG?",
        "answer": "It adds passages.[1]",
        "attribution": {"prompt": 0.0, "retrieval": 0.9, "model": 0.1, "method": "m"},
        "sources": [{"n": 1, "guide": "G", "section": "S", "path": "corpus/g.md"}],
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
    footer = embed_footer(turn)
    assert "Sources: [1] G › S" in footer and "Shaped by:" in footer and "passages 90%" in footer


def test_busy_text_says_how_many_are_ahead() -> None:
    assert "1 question ahead of you" in busy_text(1) and "3 questions ahead" in busy_text(3)
