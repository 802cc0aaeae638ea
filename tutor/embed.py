"""The sentence-transformers embedder, loaded once and only when first used."""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ModelError

# Chunks encoded at a time. On 2 cores MiniLM encoded 400-character chunks at 97-103 a second in
# batches of 16, 88-90 in sentence-transformers' default 32, 68 in 128 (less padding, smaller
# matrices that stay in cache).
BATCH_SIZE = 16


# Vectors kept, the latest used (about 12 MB at all-mpnet-base-v2's 768 dimensions). The same
# texts come back question after question: the question itself (searched more than once), and the
# guides' sentences that the scope judgement, the quotes and the checks rank, which warm_up embeds.
CACHED_TEXTS = 4096


class Embedder:
    """Normalised sentence embeddings, so that a dot product is a cosine similarity."""

    def __init__(self, name_or_path: str) -> None:
        self.name = name_or_path
        self._model: Any = None
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_lock = threading.Lock()  # embeddings are asked for from several request threads

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

    @property
    def dimensions(self) -> int:
        """The length of its vectors (768 for the default all-mpnet-base-v2, 384 for MiniLM)."""
        return int(self._load().get_embedding_dimension())

    def embed(self, texts: list[str], progress: bool = False) -> list[list[float]]:
        """Embed texts in batches, those embedded lately taken from the cache; `progress` shows a
        bar on long runs."""
        if not texts:
            return []
        with self._cache_lock:
            known = {text: self._cache[text] for text in texts if text in self._cache}
            for text in known:
                self._cache.move_to_end(text)
        missing = list(dict.fromkeys(text for text in texts if text not in known))
        if missing:
            vectors = self._load().encode(
                missing,
                batch_size=BATCH_SIZE,
                normalize_embeddings=True,
                show_progress_bar=progress,
                convert_to_numpy=True,
            )
            with self._cache_lock:
                for text, vector in zip(missing, vectors, strict=True):
                    # A copy: a row of the batch would keep the whole batch alive.
                    known[text] = self._cache[text] = np.array(vector, dtype=np.float32)
                while len(self._cache) > CACHED_TEXTS:
                    self._cache.popitem(last=False)
        return [known[text].tolist() for text in texts]

    def clear_cache(self) -> None:
        """Forget every vector kept (bench_core times a question as a server meets it first)."""
        with self._cache_lock:
            self._cache.clear()

    def embed_one(self, text: str) -> list[float]:
        """Embed one text (a query or an answer sentence)."""
        return self.embed([text])[0]
