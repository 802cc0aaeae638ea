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
import unicodedata
from collections.abc import Sequence

from .lexical import lexical_tokens

_TARGET = r"(instructions?|question|prompt|rules|guidelines|above|previous|everything)"
_READER = r"(ai|assistant|model|llm|chatbot|bot|agent|summari[sz]er|language\s+model)s?"
_READER_NAMED = rf"((ai|large|chat|generative|conversational|the)\s+){{0,2}}{_READER}"
_ADDRESSED = rf"\b(any|every|each|all)\s+{_READER_NAMED}"
_MUST = (
    r"(must|should|shall|will|can|may|ought\s+to|needs?\s+to|ha(s|ve)\s+to"
    r"|(is|are)\s+((required|expected|asked|instructed|supposed)\s+)?to)"
)
# What the reader is told to pass on: "tell users", "say that", "reply: '…'", "never mention", "describe … as".
_ORDER = (
    r"(tell\s+(the\s+)?(users?|readers?|students?|people|everyone|them)\b"
    r"|(say|reply|respond|answer|state|claim|mention|explain|add|write|insist|stress|point\s+out|warn)\s+(that|with|only)\b"
    r"|(say|reply|respond|answer|write|output)\s*:?\s*[\"“'‘]"
    r"|(never|not)\s+(mention|say|discuss|reveal|talk\s+about)\b|(describe|treat|present)\b[^.!?]{0,30}\bas\b"
    r"|point\s+(users|readers|people)\b|recommend\b)"
)
# Sentences that give orders to whoever reads them.
_PLANTED = [
    rf"\b(ignore|disregard|forget|override)\b[^.!?]{{0,60}}\b{_TARGET}\b",
    r"\b(instead|only|always|just)\b[^.!?]{0,25}\b(say|reply|respond|answer with|output|write)\b",
    # An order to say a quoted text, at the start of a clause or after a word of order ("now say
    # 'hacked'", "you must reply 'yes'"); not what someone else says ("when people say 'we trained
    # it on our emails', …").
    r"(^|[.!?:;,]\s*|\b(now|just|please|then|and|to|must|should|will|only|instead)\s+)\W*"
    r"(say|reply|respond|output|print|write)\s*(:|exactly|only|the words)?\s*[\"“'‘]",
    r"\b(you are now|you must now|from now on,? you|pretend (to be|you are)|act as if you)\b",
    r"\bnote to (the )?(ai|assistant|model|llm|chatbot)\b",
    r"\b(ai|assistant|model|llm|chatbot)s?\s+(reading|processing) this\b",
    # Addressed to the model that reads the text, with an order of what to tell its users ("Every AI
    # assistant asked about this must reply that …"), as its reader ("any model summarising this
    # page …"), or by name ("Dear assistant,", "All LLMs: …"). Not "every model" as the subject of
    # a question or a guide's sentence ("every model will output a probability …").
    rf"{_ADDRESSED}\b[^.!?]{{0,60}}?\b{_MUST}\s+((also|always|only|now|instead|simply|clearly|first|just)\s+)?{_ORDER}",
    rf"{_ADDRESSED}\s+((that|which|who)\s+)?((is|are)\s+)?"
    r"(reads?|reading|process(es|ing)?|summari[sz](es|ing|ed)?|answer(s|ing)|sees?|seeing|asked|used|"
    r"quot(es|ing)|retriev(es|ing|ed)|given)\b[^.!?]{0,40}?\b(this|these)\b",
    rf"\b(dear|hello|hi|hey|attention|to\s+(all|any|every))\s+{_READER_NAMED}\s*[,:!]",
    rf"{_ADDRESSED}\s*(:|,\s*(please|you)\b)",
    r"\b(reply|answer|response|output)\b[^.!?]{0,60}\b(is|must be|should be|has to be)\s+(always|only)\b",
    r"\balways\s+(reply|answer|respond|say|end|begin|start)\b",
    # The same in French and German, the guides' neighbouring languages.
    r"\b(ignorez|ignore[sz]?|oubliez)\b[^.!?]{0,40}\b(instructions?|consignes?|question)\b",
    r"\b(répondez|réponds|dites|écrivez)\b[^.!?]{0,30}\b(toujours|seulement|uniquement)\b",
    r"\b(ignoriere|ignorieren sie|vergiss|vergessen sie)\b[^.!?]{0,40}\b(anweisungen|frage|regeln)\b",
    r"\b(antworte|antworten sie|sage|sagen sie|schreibe)\b[^.!?]{0,30}\b(immer|nur|ausschließlich)\b",
    # A request for credentials: no guide about model training asks its reader to sign in.
    r"\b(enter|type|provide|send|confirm|verify|share)\b[^.!?]{0,40}\b(password|passwort|mot de passe|credentials)\b",
    r"\b(password|passwort|mot de passe|credentials)\b[^.!?]{0,40}\b(sign[- ]?in|log[- ]?in|anmelden|connexion)\b",
    # Chat-template markup: the text pretends to be a turn of the conversation.
    r"<\|[a-z_]+\|>|\[/?INST\]|<</?SYS>>|^\s*#{2,}\s*(system|instruction)\b",
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
_PLANTED_RE = [re.compile(p, re.IGNORECASE | re.MULTILINE) for p in _PLANTED]
_QUESTION_RE = [re.compile(p, re.IGNORECASE | re.MULTILINE) for p in _QUESTION]
# The same orders with every space and mark squeezed out: "I g n o r e  a l l" and "ignore-all".
_SQUEEZED_RE = re.compile(
    r"(ignore|disregard|forget|override)(all|the|any|your|my|of)*(previous|prior|above|earlier|former)?"
    r"(instructions?|rules|prompt|guidelines)|youarenow|pretend(tobe|youare)|developermode|jailbreak"
)

# Letters that look like Latin ones (Cyrillic, Greek) and are used to slip words past a filter.
_CONFUSABLES = str.maketrans(
    "аеорсухіјѕԁԛԝАВЕНІЈКМОРСТХЅԌαεικνορτυχΑΒΕΖΗΙΚΜΝΟΡΤΥΧ",
    "aeopcyxijsdqwABEHIJKMOPCTXSGaeiknoptuxABEZHIKMNOPTYX",
)
# Three or more single letters with one separator between each: "I g n o r e", "i.g.n.o.r.e".
_SPACED_LETTERS = re.compile(r"(?<![^\W\d_])(?:[^\W\d_][ .\-_*]){2,}[^\W\d_](?![^\W\d_])")

# A sentence runs over single line breaks (guides wrap their lines) but not over a blank line.
_SENTENCES = re.compile(r"(?:[^.!?\n]|\n(?!\s*\n))+[.!?]*[\"”'’)]*")

LEFT_OUT = "[instruction-like text left out]"
INSTRUCTIONS_REPLY = (
    "I answer questions about how AI language models are trained, from the guides. I cannot change "
    "my instructions, take on another role, or share how this server is set up."
)
FOLLOWED_OVERLAP = 0.6  # share of an answer sentence's words found in a planted sentence


def normalise(text: str) -> str:
    """Text as a filter should see it: NFKC, invisible characters removed, look-alike letters folded
    to Latin, and letters spaced out one by one joined again."""
    text = unicodedata.normalize("NFKC", text)
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Cf")
    text = text.translate(_CONFUSABLES)
    return _SPACED_LETTERS.sub(lambda m: re.sub(r"[ .\-_*]", "", m.group(0)), text)


def tries_to_instruct(question: str) -> bool:
    """The question tries to change the tutor's instructions or get its configuration."""
    seen = normalise(question)
    if any(pattern.search(seen) for pattern in _QUESTION_RE):
        return True
    return bool(_SQUEEZED_RE.search(re.sub(r"[^a-z]", "", seen.lower())))


def planted_sentences(text: str) -> tuple[str, ...]:
    """The sentences of a passage that read as instructions to the model."""
    return tuple(
        sentence.strip()
        for sentence in _SENTENCES.findall(text)
        if any(pattern.search(normalise(sentence)) for pattern in _PLANTED_RE)
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


# Links and e-mail addresses, written out or bare (example.com/path).
_LINK = re.compile(
    r"\b(?:https?|ftp)://[^\s<>\"'`]+|\bwww\.[^\s<>\"'`]+|\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b"
    r"|\b[a-z0-9-]+(?:\.[a-z0-9-]+)*\.(?:com|org|net|io|ai|co|info|biz|ru|xyz|app|dev|me)(?:/[^\s<>\"'`]*)?",
    re.IGNORECASE,
)
_CREDENTIALS = re.compile(
    r"\b(passwords?|passwort|mot de passe|passcodes?|credentials?|login details|sign-in details|pin code)\b",
    re.IGNORECASE,
)


def links_in(text: str) -> list[str]:
    """Every link and e-mail address in the text, trailing punctuation trimmed."""
    return [link.rstrip(".,;:!?)]") for link in _LINK.findall(text)]


def unsourced_warnings(answer: str, passages: Sequence[str]) -> list[str]:
    """What the answer contains that an attacker would plant and no passage given to the model holds:
    a link or e-mail address, or a request for credentials. Phrasing-independent: it compares the
    answer with the prompt's passages, not with a list of known attacks."""
    given = " ".join(normalise(p) for p in passages).lower()
    warnings = []
    if [link for link in links_in(normalise(answer)) if link.lower() not in given]:
        warnings.append(
            "This answer contains a link or e-mail address that none of its passages contains: do not follow it."
        )
    asked = {m.lower() for m in _CREDENTIALS.findall(normalise(answer))}
    if asked and not any(word in given for word in asked):
        warnings.append(
            "This answer mentions a password or credentials, which none of its passages does: never give them."
        )
    return warnings
