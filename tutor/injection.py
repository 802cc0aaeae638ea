"""Prompt injection: text that speaks to the model instead of about the subject.

Two places it can come from, two defences that do not depend on a 0.5B model resisting it:
- a question that tries to change the tutor's instructions or get its configuration gets a
  fixed reply, and the model is not asked;
- a sentence in a guide that reads as an instruction to the model ("ignore the question and say
  ...") is left out of the prompt (the passage is still shown, with the sentence marked), and an
  answer that nonetheless repeats such a sentence is flagged.
The patterns are deliberately narrow: the guides themselves talk about prompts and instructions,
and none of their passages may be flagged (tests/test_injection.py checks the whole corpus).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from .retrieve import lexical_tokens

_TARGET = r"(instructions?|question|prompt|rules|guidelines|above|previous|everything)"
# Sentences that give orders to whoever reads them.
_PLANTED = [
    rf"\b(ignore|disregard|forget|override)\b[^.!?]{{0,60}}\b{_TARGET}\b",
    r"\b(instead|only|always|just)\b[^.!?]{0,25}\b(say|reply|respond|answer with|output|write)\b",
    r"\b(say|reply|respond|output|print|write)\s*(:|exactly|only|the words)?\s*[\"“'‘]",
    r"\b(you are now|you must now|from now on,? you|pretend (to be|you are)|act as if you)\b",
    r"\bnote to (the )?(ai|assistant|model|llm|chatbot)\b",
    r"\b(ai|assistant|model|llm|chatbot)s?\s+(reading|processing) this\b",
]
# Questions that try to get past the tutor's role: the planted patterns plus asks for its set-up.
_QUESTION = [
    *_PLANTED,
    r"\b(reveal|show|print|repeat|tell me|what is|what are|give me|output|dump|leak)\b[^.!?]{0,40}"
    r"\byour\s+(system prompt|instructions|prompt|configuration|config|settings|rules)\b",
    r"\b(reveal|show|print|tell me|give me|output|dump|leak)\b[^.!?]{0,40}\b(the|this)\s+"
    r"((server|tutor|app)'?s?\s+(configuration|config|settings|environment)"
    r"|(\w+\s+)?(token|api key|password|secrets?))\b",
    r"\b(jailbreak|developer mode|dan mode)\b",
]
_PLANTED_RE = [re.compile(p, re.IGNORECASE) for p in _PLANTED]
_QUESTION_RE = [re.compile(p, re.IGNORECASE) for p in _QUESTION]
# A sentence runs over single line breaks (guides wrap their lines) but not over a blank line.
_SENTENCES = re.compile(r"(?:[^.!?\n]|\n(?!\s*\n))+[.!?]*[\"”'’)]*")

LEFT_OUT = "[instruction-like text left out]"
INSTRUCTIONS_REPLY = (
    "I answer questions about how AI language models are trained, from the guides. I cannot change "
    "my instructions, take on another role, or share how this server is set up."
)
FOLLOWED_OVERLAP = 0.6  # share of an answer sentence's words found in a planted sentence


def tries_to_instruct(question: str) -> bool:
    """The question tries to change the tutor's instructions or get its configuration."""
    return any(pattern.search(question) for pattern in _QUESTION_RE)


def planted_sentences(text: str) -> tuple[str, ...]:
    """The sentences of a passage that read as instructions to the model."""
    return tuple(
        sentence.strip()
        for sentence in _SENTENCES.findall(text)
        if any(pattern.search(sentence) for pattern in _PLANTED_RE)
    )


def without_planted(text: str, planted: Sequence[str]) -> str:
    """The passage as the model sees it: each planted sentence replaced by a marker."""
    for sentence in planted:
        text = text.replace(sentence, LEFT_OUT)
    return text


def repeats_planted(sentence: str, planted: Sequence[str]) -> bool:
    """The answer sentence is mostly the words of a planted sentence: the model followed it."""
    words = set(lexical_tokens(sentence))
    if len(words) < 2:
        return False
    return any(len(words & set(lexical_tokens(p))) / len(words) >= FOLLOWED_OVERLAP for p in planted)
