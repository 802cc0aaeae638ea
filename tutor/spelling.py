"""Typing slips corrected before a question is searched: "can we use the raw base moedl as a chabtot?".

Staff type fast. A slip costs the search more than a reader would think: the embedder reads
"moedl" as word pieces of nothing in particular, and BM25 finds no chunk with it. With slips made
by a fixed rule in a third of the longer words of every tuning half's questions, the answering
facts in the prompt's passages fell from 391 to 316 of 435, and 28 more questions in scope were
refused (docs/evaluation.md, 2026-12-08).

Only a word that neither the guides nor an English dictionary know is corrected, and only to a
word one slip away (a letter swapped with the next, left out, doubled or another one typed; a
word of eight letters or more also two slips away from a word of the guides). A word the guides
use wins over one they do not, a swap over a letter left out or added, and that over a letter
typed for another; a short word only for two letters swapped or one left out: "admin" is one
letter from "admit" and "amin". Words written with capitals inside ("ChatGPT", "RLHF") and words
under four letters are left as typed. The guides' words include their cards' (an author's name).
"""

from __future__ import annotations

import re
from collections import Counter
from functools import cache
from typing import Any

from rapidfuzz import process
from rapidfuzz.distance import OSA

from .lexical import american_spelling

_WORD = re.compile(r"[A-Za-z]+")
SHORTEST = 4  # shorter words are left as typed: too many words lie one letter from them
SUBSTITUTED_FROM = 6  # a letter typed for another, or one too many, is corrected in words this long
TWO_SLIPS_FROM = 8  # a word this long may be two slips from the guides' word


@cache
def _english() -> Any:
    """pyspellchecker's English dictionary (about 160,000 words), read once a process (two
    threads at the first question may both read it; the lookups only read)."""
    from spellchecker import SpellChecker

    return SpellChecker(distance=1)


def _slip(typed: str, word: str) -> int:
    """0 for two letters swapped, 1 for a letter left out or added, 2 for another letter typed,
    3 for more than one slip."""
    if len(typed) == len(word):
        differ = [i for i, (a, b) in enumerate(zip(typed, word, strict=True)) if a != b]
        if len(differ) == 2 and differ[1] == differ[0] + 1 and typed[differ[0]] == word[differ[1]]:
            return 0
        return 2 if len(differ) == 1 else 3
    return 1 if abs(len(typed) - len(word)) == 1 and OSA.distance(typed, word) == 1 else 3


class Speller:
    """Corrects the slips of a question towards the words of the guides (`counts`: how often each
    occurs in them) and of an English dictionary."""

    def __init__(self, counts: Counter[str]) -> None:
        self.counts = counts
        self._words = [w for w in counts if len(w) >= SHORTEST - 1]

    def warm_up(self) -> None:
        """Read the English dictionary now (a quarter of a second) rather than at the first question."""
        if self.counts:
            _english()

    def corrected(self, text: str) -> str:
        """The text with each slip corrected; unchanged with no guide words to correct towards."""
        if not self.counts:
            return text
        return _WORD.sub(lambda found: self._word(found.group(0)), text)

    def _word(self, typed: str) -> str:
        low = typed.lower()
        if len(low) < SHORTEST or any(c.isupper() for c in typed[1:]) or self._known(low):
            return typed
        english = _english()
        near = set(english.known(english.edit_distance_1(low)))
        near |= {w for w, _, _ in process.extract(low, self._words, scorer=OSA.distance, score_cutoff=1, limit=None)}
        ranked = sorted(
            (_slip(low, w), w not in self.counts, -self.counts[w], -english.word_usage_frequency(w), w)
            for w in near
            if w != low
        )
        # A short word is corrected only for two letters swapped or one left out.
        long = len(low) >= SUBSTITUTED_FROM
        chosen = [r[-1] for r in ranked if r[0] == 0 or long and r[0] <= 2 or r[0] == 1 and len(r[-1]) > len(low)]
        if not chosen and len(low) >= TWO_SLIPS_FROM:
            far = process.extract(low, self._words, scorer=OSA.distance, score_cutoff=2, limit=None)
            chosen = [w for w, _, _ in sorted(far, key=lambda f: (f[1], -self.counts[f[0]], f[0]))]
        if not chosen:
            return typed
        return chosen[0].capitalize() if typed[0].isupper() else chosen[0]

    def _known(self, low: str) -> bool:
        """A word of the guides, or of English as the dictionary spells it or in British spelling
        ("optimisation", "centre"), or with its apostrophe left out ("whos", "dont")."""
        english = _english()
        if low in self.counts or low in english or american_spelling(low) in english:
            return True
        if low.endswith("re") and low[:-2] + "er" in english:
            return True
        return any(low[:i] + "'" + low[i:] in english for i in (len(low) - 1, len(low) - 2))
