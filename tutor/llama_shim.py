"""The few llama-cpp-python internals the in-process model needs, behind one checked door.

Reading each generated token's log-probability as it is sampled, scoring an answer with only the
logits it needs, and keeping the KV cache of the shared prompt prefix all reach below
llama-cpp-python's public API (`Llama._ctx`, `Llama._batch`, `Llama._input_ids`, the vocabulary
handle). Those names are private and may change in any release, so they are used here only, and
checked when a model is loaded: an untested version or a missing attribute is a `ModelError`
naming what is wrong, not an AttributeError in the middle of an answer.
"""

from __future__ import annotations

import contextlib
import ctypes
import re
from collections.abc import Iterator
from typing import Any

import numpy as np

from .errors import ModelError

# The llama-cpp-python versions whose internals this module was tested against: the pin in
# pyproject.toml (tests/test_llama_shim.py checks that the two agree). Lowest included, highest excluded.
TESTED_VERSIONS = ("0.3.36", "0.3.37")

# What is read or called below llama-cpp-python's public API, as dotted paths from a `Llama`.
REQUIRED = (
    "_ctx.decode",
    "_ctx.get_logits_ith",
    "_ctx.kv_cache_seq_rm",
    "_ctx.ctx",
    "_batch.batch",
    "_input_ids",
    "input_ids",
    "n_tokens",
    "_model.vocab",
    "n_batch",
    "n_vocab",
    "eval",
)
BATCH_FIELDS = ("n_tokens", "token", "pos", "seq_id", "n_seq_id", "logits")
# A context's cache copied out: the tokens it holds, llama.cpp's copy of their KV cells, its size.
SavedCache = tuple[list[int], Any, int]


def _release(version: str) -> tuple[int, ...]:
    """The numeric release of a version string ("0.3.36" -> (0, 3, 36); "0.3.36rc1" -> (0, 3, 36))."""
    match = re.match(r"\d+(?:\.\d+)*", version.strip())
    if not match:
        raise ModelError(f"llama-cpp-python reports an unreadable version {version!r}")
    return tuple(int(part) for part in match.group(0).split("."))


def check_version(version: str) -> None:
    """Refuse a llama-cpp-python whose internals were not tested here."""
    low, high = TESTED_VERSIONS
    if not _release(low) <= _release(version) < _release(high):
        raise ModelError(
            f"llama-cpp-python {version} is installed, but the tutor reads its internals and is tested with "
            f">={low},<{high} (the pin in pyproject.toml): pip install 'llama-cpp-python=={low}'"
        )


def missing_internals(llm: Any) -> list[str]:
    """The internals of `llm` that are not there (an empty list when all are)."""
    missing = []
    for path in REQUIRED:
        target = llm
        for name in path.split("."):
            try:
                target = getattr(target, name)
            except Exception:  # a property that fails is as missing as an absent one
                missing.append(path)
                break
    batch = getattr(getattr(llm, "_batch", None), "batch", None)
    if batch is not None:
        missing += [f"_batch.batch.{name}" for name in BATCH_FIELDS if not hasattr(batch, name)]
    return missing


class LlamaInternals:
    """One llama.cpp context (`Llama`) seen through the internals the tutor needs, checked on creation."""

    def __init__(self, llm: Any, *, version: str | None = None) -> None:
        import llama_cpp

        version = version if version is not None else str(getattr(llama_cpp, "__version__", "unknown"))
        check_version(version)
        missing = missing_internals(llm)
        missing += [
            f"llama_cpp.{name}"
            for name in (
                "llama_vocab_is_eog",
                "llama_state_seq_get_size",
                "llama_state_seq_get_data",
                "llama_state_seq_set_data",
            )
            if not hasattr(llama_cpp, name)
        ]
        if missing:
            raise ModelError(
                f"llama-cpp-python {version} lacks internals the tutor reads: {', '.join(missing)}; "
                f"install the tested version (>={TESTED_VERSIONS[0]},<{TESTED_VERSIONS[1]})"
            )
        self.llm = llm
        self._is_eog = llama_cpp.llama_vocab_is_eog
        self._vocab = llm._model.vocab
        self._aside: SavedCache | None = None  # the cache of the last call aside

    def is_end(self, token: int) -> bool:
        """Whether the token ends a generation (end of turn, end of text)."""
        return bool(self._is_eog(self._vocab, token))

    def cached_prefix(self, tokens: list[int]) -> int:
        """How many leading tokens of `tokens` the context already holds in its KV cache."""
        cached = 0
        for a, b in zip(self.llm._input_ids, tokens, strict=False):
            if a != b:
                break
            cached += 1
        return cached

    def feed(self, tokens: list[int]) -> None:
        """Evaluate a prompt, reusing the longest prefix the context already holds (as
        `Llama.generate` does), so the system prompt is prefilled once."""
        llm = self.llm
        llm.n_tokens = min(self.cached_prefix(tokens), len(tokens) - 1)  # the last token is evaluated again
        llm.eval(tokens[llm.n_tokens :])

    def hold_fixed_part(self, prompt: list[int], fixed: int) -> None:
        """Leave exactly `prompt[:fixed]` in the cache, evaluated on its own from position 0 (kept
        where the cache already holds it, which was evaluated the same way), so that the rest of
        the prompt is always evaluated from `fixed` on, whatever the cache held before."""
        if self.cached_prefix(prompt) >= fixed:
            self.forget_from(fixed)
        else:
            self.forget_from(0)
            self.llm.eval(prompt[:fixed])

    @contextlib.contextmanager
    def kept_cache(self) -> Iterator[None]:
        """Run a call beside the conversation (the scope judgement or the stance check, each with a
        system prompt of its own) without losing the conversation's cached prompt: the cache is
        copied out before the call and put back after it (the KV cells of the context's one
        sequence and the tokens they hold, about 28 KB a token for the 1.5B model), and the call's
        own cache is kept the same way for the next call aside, which then reuses the part of its
        prompt before its last message's content (`hold_fixed_part`). Without this the judgement
        and the answer after it would each prefill their system prompt again. Should a copy fail,
        the cache is left empty and the next prompt prefilled in full."""
        conversation = self._saved_cache()
        self._restore_cache(self._aside)
        try:
            yield
        finally:
            self._aside = self._saved_cache()
            self._restore_cache(conversation)

    def _saved_cache(self) -> SavedCache | None:
        import llama_cpp

        llm, ctx = self.llm, self.llm._ctx.ctx
        if not llm.n_tokens:
            return None
        size = llama_cpp.llama_state_seq_get_size(ctx, 0)
        data = (ctypes.c_uint8 * size)()
        written = llama_cpp.llama_state_seq_get_data(ctx, data, size, 0)
        return (list(llm.input_ids[: llm.n_tokens]), data, written) if written else None

    def _restore_cache(self, saved: SavedCache | None) -> None:
        import llama_cpp

        self.forget_from(0)
        if saved is not None and llama_cpp.llama_state_seq_set_data(self.llm._ctx.ctx, saved[1], saved[2], 0):
            tokens = saved[0]
            self.llm.input_ids[: len(tokens)] = tokens
            self.llm.n_tokens = len(tokens)
        self.llm._requires_eval = True  # the logits are not those of the restored tokens

    def forget_from(self, position: int) -> None:
        """Drop the KV cache from `position` on: what follows is evaluated afresh."""
        self.llm._ctx.kv_cache_seq_rm(0, position, -1)
        self.llm.n_tokens = position

    def decode(self, chunk: list[int], begin: int, wanted: list[bool]) -> None:
        """Evaluate `chunk` at positions `begin`… (at most n_batch tokens), keeping the logits only
        where `wanted`; read them with `output_logits` before the next decode."""
        llm = self.llm
        batch = llm._batch.batch
        batch.n_tokens = len(chunk)
        for i, token in enumerate(chunk):
            batch.token[i] = token
            batch.pos[i] = begin + i
            batch.seq_id[i][0] = 0
            batch.n_seq_id[i] = 1
            batch.logits[i] = wanted[i]
        llm._ctx.decode(llm._batch)
        llm.input_ids[begin : begin + len(chunk)] = chunk
        llm.n_tokens = begin + len(chunk)

    def output_logits(self, i: int) -> np.ndarray:
        """The logits after the `i`th token of the last decode (-1: the last one), as llama.cpp holds
        them (a view: valid until the next evaluation)."""
        return np.ctypeslib.as_array(self.llm._ctx.get_logits_ith(i), shape=(self.llm.n_vocab(),))

    def last_logits(self) -> np.ndarray:
        """The next-token logits after the context's last evaluated token (a copy)."""
        return np.array(self.output_logits(-1), dtype=np.float64)
