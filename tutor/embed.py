"""The sentence-transformers embedder, loaded once and only when first used."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .errors import ModelError

# Chunks encoded at a time. On 2 cores MiniLM encoded 400-character chunks at 97-103 a second in
# batches of 16, 88-90 in sentence-transformers' default 32, 68 in 128 (less padding, smaller
# matrices that stay in cache).
BATCH_SIZE = 16


class Embedder:
    """Normalised sentence embeddings, so that a dot product is a cosine similarity."""

    def __init__(self, name_or_path: str) -> None:
        self.name = name_or_path
        self._model: Any = None

    @property
    def model_id(self) -> str:
        """A name that changes when the model does: the folder name for a local model."""
        path = Path(self.name)
        return path.parent.name if path.name == "model" else path.name

    def _load(self) -> Any:
        if self._model is None:
            if Path(self.name).is_dir():
                # A local folder must never reach for a model hub (none is reachable here).
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as transformers_logging

            transformers_logging.disable_progress_bar()

            try:
                self._model = SentenceTransformer(self.name, device="cpu")
            except Exception as exc:  # OSError, ValueError, hub errors: all mean "cannot load"
                raise ModelError(f"cannot load the embedding model {self.name}: {exc}") from None
        return self._model

    def embed(self, texts: list[str], progress: bool = False) -> list[list[float]]:
        """Embed texts in batches; `progress` shows a bar on long runs."""
        if not texts:
            return []
        vectors = self._load().encode(
            texts,
            batch_size=BATCH_SIZE,
            normalize_embeddings=True,
            show_progress_bar=progress,
            convert_to_numpy=True,
        )
        return [vector.tolist() for vector in vectors]

    def embed_one(self, text: str) -> list[float]:
        """Embed one text (a query or an answer sentence)."""
        return self.embed([text])[0]
