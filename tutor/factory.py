"""The one place that wires the real parts together from the settings."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .answer import Tutor
from .config import Settings
from .corpus import read_guides
from .embed import Embedder
from .errors import IndexMissingError
from .gate import ModelGate
from .index import FolderStore, IngestReport, Store, embedded_by, ingest
from .index_server import ChromaServerStore
from .llm import ChatModel, LlamaCppChat, OpenAIChat
from .model_files import resolve_embed_model, resolve_model_path
from .prompts import load_presets
from .retrieve import Retriever


def build_embedder(settings: Settings) -> Embedder:
    """The configured sentence-transformers embedder (loaded on first use)."""
    return Embedder(resolve_embed_model(settings.embed_model, settings.cache_dir))


def index_store(settings: Settings) -> Store:
    """The configured index: on a Chroma server, or in the index folder."""
    if settings.chroma_url:
        return ChromaServerStore(settings.chroma_url, lock_dir=settings.index_dir)
    return FolderStore(settings.index_dir)


def ingest_from_settings(
    settings: Settings, paths: Sequence[Path] = (), *, embedder: Embedder | None = None, progress: bool = False
) -> IngestReport:
    """Ingest `paths` (default: the corpus folder) into the configured index, chunked as configured."""
    return ingest(
        read_guides(list(paths) or [settings.corpus_dir]),
        index_store(settings),
        embedder=embedder or build_embedder(settings),
        chunk_size=settings.chunk_size,
        chunk_overlap=settings.chunk_overlap,
        progress=progress,
    )


def other_embedder_of_index(manifest: dict[str, Any] | None, embedder: Embedder) -> str | None:
    """The embedding model the index was built with, where it is not this one (None: no index,
    or built with this one). Its vectors cannot be compared with this model's."""
    built = embedded_by(manifest)
    return built if built and built != embedder.model_id else None


def build_tutor(settings: Settings, *, retrieval: bool = True) -> Tutor:
    """A Tutor on the configured index, embedder and chat model; cheap checks run first."""
    presets = load_presets(settings.prompts_dir)
    embedder = build_embedder(settings)
    if retrieval and (built := other_embedder_of_index(index_store(settings).read_manifest(), embedder)):
        raise IndexMissingError(
            f"the index was built with the embedding model {built}, not {embedder.model_id} as set now: "
            "run `tutor ingest` to build it again"
        )
    retriever = (
        Retriever(
            index_store(settings),
            embedder=embedder,
            lexical_weight=settings.lexical_weight,
            sentence_weight=settings.sentence_weight,
        )
        if retrieval
        else None
    )
    chat: ChatModel
    if settings.llm_url:
        chat = OpenAIChat(
            settings.llm_url,
            model=settings.llm_model,
            tokenizer=settings.llm_server_tokenizer,
            template=settings.llm_template,
        )
    else:
        model_path = resolve_model_path(settings.model_path, settings.model_sha256, settings.cache_dir, settings.model)
        chat = LlamaCppChat(
            model_path, n_ctx=settings.n_ctx, n_threads=settings.n_threads, flash_attention=settings.flash_attention
        )
    gate = ModelGate(slots=settings.llm_parallel if settings.llm_url else 1, max_waiting=settings.max_waiting)
    return Tutor(retriever=retriever, chat=chat, embedder=embedder, presets=presets, settings=settings, gate=gate)
