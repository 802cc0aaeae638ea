"""Typing slips corrected before a question is searched: "can we use the raw base moedl as a chabtot?".

Staff type fast. A slip costs the search more than a reader would think: the embedder reads
"moedl" as word pieces of nothing in particular, and BM25 finds no chunk with it. With slips made
by a fixed rule in a third of the longer words of every tuning half's questions, the answering
facts in the prompt's passages fell from 391 to 316 of 435, and 28 more questions in scope were
refused (docs/evaluation.md, 2026-12-08).

A word is corrected only when neither the guides nor an English dictionary know it, and only to
a word of the guides one slip away (a letter swapped with the next, left out, doubled or another
one typed; a word of eight letters or more also two slips away): a slip matters to the search
only where it hides a word the guides use, and a correction to any English word rewrote jargon
("json" to "jason", "agentic" to "argentic"). A swap wins over a letter left out or added, and
that over a letter typed for another, which a short word is not given, nor a letter too many
("admin" is one letter from "admit"). Left as typed: words under four letters, words with
capitals inside ("ChatGPT", "RLHF"), words with an apostrophe or a letter outside English's
alphabet ("couldn't", "décision"), British spellings, a contraction without its apostrophe
("whos"), and a prefix joined to a known word ("pretrain", "upskilled"). The guides' words include
their cards' (an author's name).
"""

from __future__ import annotations

import re
from collections import Counter
from functools import cache
from typing import Any

from rapidfuzz import process
from rapidfuzz.distance import OSA, Indel

from .lexical import american_spelling

_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*")  # letters of any alphabet, with an apostrophe
# Prefixes a known word may be joined to ("pretrain", "upskilled"); any two English words joined
# would let slips through ("promting" is "prom" and "ting").
_PREFIXES = (
    "pre",
    "post",
    "re",
    "un",
    "non",
    "sub",
    "co",
    "multi",
    "self",
    "up",
    "over",
    "under",
    "out",
    "off",
    "back",
    "front",
)
COMMON = 500_000  # an English word this frequent in pyspellchecker's counts ("long", "take", not "veal")
MOST_LOOKED_UP = 32  # unknown words a question gets looked up; a longer run of them is left as typed
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
    occurs in them), leaving alone what an English dictionary knows."""

    def __init__(self, counts: Counter[str]) -> None:
        self.counts = counts
        self._by_length: dict[int, list[str]] = {}
        for word in counts:
            self._by_length.setdefault(len(word), []).append(word)
        self._seen: dict[str, str] = {}  # a typed word -> what it is read as (bounded)

    def warm_up(self) -> None:
        """Read the English dictionary now (a quarter of a second) rather than at the first question."""
        if self.counts:
            _english()

    def corrected(self, text: str) -> str:
        """The text with each slip corrected; unchanged with no guide words to correct towards."""
        if not self.counts:
            return text
        looked_up = 0

        def read(found: re.Match[str]) -> str:
            nonlocal looked_up
            typed = found.group(0)
            low = typed.lower()
            if len(low) < SHORTEST or not typed.isascii() or any(c.isupper() for c in typed[1:]) or "'" in low:
                return typed
            chosen = self._seen.get(low)
            if chosen is None:
                if looked_up >= MOST_LOOKED_UP:
                    return typed
                looked_up += 1
                if len(self._seen) > 10_000:
                    self._seen.clear()  # another thread may clear it too: `chosen` is held here
                chosen = self._seen[low] = low if self._known(low) else self._nearest(low)
            return typed if chosen == low else chosen.capitalize() if typed[0].isupper() else chosen

        return _WORD.sub(read, text)

    def _nearest(self, low: str) -> str:
        """The guides' word one slip from `low` (two for a long word), or `low` itself."""
        near = self._within(low, 1)
        ranked = sorted((_slip(low, w), -self.counts[w], w) for w in near)
        # A short word is corrected only for two letters swapped or one left out.
        long = len(low) >= SUBSTITUTED_FROM
        chosen = [w for slip, _, w in ranked if slip == 0 or long and slip <= 2 or slip == 1 and len(w) > len(low)]
        if not chosen and len(low) >= TWO_SLIPS_FROM and not _english().known(_english().edit_distance_1(low)):
            # Two slips, where no English word is one away ("cheapper" is "cheaper", not "chapter"),
            # and not two letters typed for others ("chunking" is not "checking").
            far = [w for w in self._within(low, 2) if Indel.distance(low, w) <= 2]
            chosen = sorted(far, key=lambda w: (OSA.distance(low, w), -self.counts[w], w))
        if not chosen:
            # Else the commonest English words for two letters swapped ("lnog", "tkae", "waht"): not
            # in the guides, but read by the embedder and by the rules that ask "how long".
            swapped = {low[:i] + low[i + 1] + low[i] + low[i + 2 :] for i in range(len(low) - 1)}
            counted = _english().word_frequency
            chosen = sorted((w for w in swapped if counted[w] >= COMMON), key=lambda w: -counted[w])
        return chosen[0] if chosen else low

    def _within(self, low: str, slips: int) -> list[str]:
        """The guides' words within `slips` of `low`: only those of a length within reach are compared."""
        lengths = range(len(low) - slips, len(low) + slips + 1)
        words = [w for n in lengths for w in self._by_length.get(n, ())]
        return [w for w, _, _ in process.extract(low, words, scorer=OSA.distance, score_cutoff=slips, limit=None)]

    def _known(self, low: str) -> bool:
        """A word of the guides, or of English as the dictionary spells it or in British spelling
        ("optimisation", "centre"), with its apostrophe left out ("whos", "dont"), or a prefix
        joined to a known word ("pretrain", "upskilled", "backend")."""
        english = _english()
        if low in self.counts or low in english or american_spelling(low) != low:  # a British ending
            return True
        if low.endswith("re") and low[:-2] + "er" in english:
            return True
        if any(low[:i] + "'" + low[i:] in english for i in (len(low) - 1, len(low) - 2)):
            return True
        for i in range(2, len(low) - 2):
            head, tail = low[:i], low[i:]
            if head in _PREFIXES and (tail in english or tail in self.counts):
                return True
        return False
