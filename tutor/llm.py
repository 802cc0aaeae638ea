"""Chat backends behind one small seam. The in-process llama.cpp model is the default."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from .errors import ModelError

Message = dict[str, str]


class ChatModel(Protocol):
    """What the pipeline needs from a chat model."""

    name: str

    def stream(self, messages: list[Message], *, max_tokens: int, temperature: float) -> Iterator[str]:
        """Yield the reply's text pieces as they are generated."""
        ...

    def count_tokens(self, text: str) -> int:
        """How many tokens the text costs in a prompt."""
        ...


class LlamaCppChat:
    """A GGUF model run in-process by llama-cpp-python.

    llama-cpp-python keeps the KV cache of the previous prompt and evaluates only the part of a new
    prompt after the shared prefix, so the system prompt (first, and the same for every question)
    is prefilled once and not again.
    """

    def __init__(self, path: Path, *, n_ctx: int = 4096, n_threads: int | None = None) -> None:
        try:
            from llama_cpp import Llama
        except ImportError:
            raise ModelError("llama-cpp-python is not installed: pip install llama-cpp-python") from None
        try:
            self._llm: Any = Llama(
                model_path=str(path),
                n_ctx=n_ctx,
                n_threads=n_threads,
                n_batch=512,
                verbose=False,
            )
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"llama.cpp cannot load {path}: {exc}") from None
        self.name = path.stem
        # One context, one generation at a time.
        self._lock = threading.Lock()

    def stream(self, messages: list[Message], *, max_tokens: int, temperature: float) -> Iterator[str]:
        with self._lock:
            chunks = self._llm.create_chat_completion(
                messages=messages,
                max_tokens=max_tokens,
                temperature=temperature,
                stream=True,
            )
            for chunk in chunks:
                text = chunk["choices"][0]["delta"].get("content")
                if text:
                    yield text

    def count_tokens(self, text: str) -> int:
        return len(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))
