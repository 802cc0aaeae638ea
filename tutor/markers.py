"""The marks in the tutor's texts, defined once: citations, the out-of-scope phrase, and what is
not plain text. The core, the front ends and the eval all read answers through these."""

from __future__ import annotations

import re

CITATION = re.compile(r"\[(\d+)\]")  # a citation as the tutor writes it, "[2]": group 1 is the passage
# Any marker a model writes ("[1]", "[1, 2]", "[ 3 ]"), with the space before it: removed, then re-cited.
CITATION_MARKERS = re.compile(r"\s*\[\s*\d+(?:\s*[,;]\s*\d+)*\s*\]")
OPEN_CITATION = re.compile(r"\s*\[[\d,;\s]*$")  # a marker that the next token may close
TRAILING_CITATIONS = re.compile(r"(\s*\[\d+\])+\s*$")

# A sentence ends at . ! ? after a letter, a bracket or a quote (not "1." in a list), or at a line end.
SENTENCE_END = re.compile(r"((?<=[A-Za-z)\"'’%*][.!?])\s+|\n+)")

NOT_COVERED = "The guides do not cover this."
LIST_ITEM = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+")  # a line of a list: "- Cost: ...", "5. RAG: ..."
NOT_COVERED_SAID = re.compile(r"guides do not cover", re.IGNORECASE)  # an answer saying it is out of scope


def without_list_number(line: str) -> str:
    """A guide line as the figure check quotes it: "2. Fine-tuning: …" -> "Fine-tuning: …"."""
    return LIST_ITEM.sub("", line).strip()


# Control characters other than tab and newlines, and the lone surrogates that Python makes of
# bytes that are not UTF-8: a text with these is binary data, not text.
NOT_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


def split_sentences(text: str) -> list[str]:
    """Sentences and list items of a text (an answer, a passage), without citation markers."""
    clean = CITATION_MARKERS.sub("", text)
    return [s.strip() for s in SENTENCE_END.split(clean) if s.strip()]
