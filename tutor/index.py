"""Chunking guides and keeping them in a Chroma index that is replaced atomically.

Layout of the index folder:
    CURRENT        the name of the version folder that answers questions
    v-<ns>/        a complete Chroma store (the vectors), lexical.sqlite (the words, tutor.lexical)
                   and manifest.json (files, hashes, corpus version)
    .staging-<ns>/ an ingest in progress; never read, removed by the next ingest
    .lock          held by the ingest that is running

An ingest copies the current version into a staging folder, applies only what changed there, and
then switches CURRENT with os.replace. A failed or killed ingest leaves CURRENT as it was.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from .corpus import Guide
from .embed import Embedder
from .errors import IndexMissingError, IngestBusyError, TutorError
from .lexical import LexicalIndex, chunk_words, guide_words
from .markers import split_sentences

COLLECTION = "guides"
MANIFEST = "manifest.json"
LEXICAL = "lexical.sqlite"
TEXT, ABOUT = "text", "about"  # the kinds of chunk: a piece of a guide, or its card (guide_card)
# 2: the words in lexical.sqlite; 3: British endings written the American way (tutor.lexical).
# 4: each guide's card (guide_card), kind "about" in the metadata.
# 5: each guide's words as written (`spellings` in lexical.sqlite), for correcting typing slips.
# An index of an older format is rebuilt by the next ingest.
FORMAT = 5


def text_to_embed(guide: str, section: str, text: str) -> str:
    """What is embedded for a passage. The title and section travel with the text: a passage
    that says "this phase" is then still found by a question about pre-training."""
    return f"{guide}\n{section}\n{text}"


@dataclass(frozen=True)
class Chunk:
    """A piece of a guide, small enough for the prompt, with its place in the guide."""

    id: str
    text: str
    guide: str
    path: str
    section: str
    position: int
    file_sha256: str
    kind: str = TEXT  # or ABOUT: the guide's card, searched only when a question asks about a guide

    @property
    def embed_text(self) -> str:
        return text_to_embed(self.guide, self.section, self.text)

    def metadata(self) -> dict[str, Any]:
        return {
            "guide": self.guide,
            "path": self.path,
            "section": self.section,
            "position": self.position,
            "file_sha256": self.file_sha256,
            "kind": self.kind,
        }


def kind_of(meta: Mapping[str, Any]) -> str:
    """A stored chunk's kind, TEXT or ABOUT (every chunk of an index of FORMAT 4 has one)."""
    return str(meta.get("kind", TEXT))


def chunk_guide(guide: Guide, chunk_size: int, chunk_overlap: int) -> list[Chunk]:
    """Split by Markdown headings, then by size; each chunk keeps its section path."""
    from langchain_text_splitters import MarkdownHeaderTextSplitter, RecursiveCharacterTextSplitter

    by_heading = MarkdownHeaderTextSplitter(
        headers_to_split_on=[("#", "h1"), ("##", "h2"), ("###", "h3"), ("####", "h4")],
        strip_headers=True,
    )
    by_size = RecursiveCharacterTextSplitter(
        chunk_size=chunk_size,
        chunk_overlap=chunk_overlap,
        separators=["\n\n", "\n", ". ", " ", ""],
        keep_separator="end",
    )
    chunks: list[Chunk] = []
    prefix = _id_prefix(guide)
    # Each size-split piece keeps its section's heading metadata (LangChain's split_documents).
    for piece in by_size.split_documents(by_heading.split_text(guide.text)):
        text = piece.page_content.strip()
        if not text:
            continue
        headings = [piece.metadata[h] for h in ("h1", "h2", "h3", "h4") if h in piece.metadata]
        if headings and headings[0] == guide.title:
            headings = headings[1:]
        position = len(chunks)
        chunks.append(
            Chunk(
                id=f"{prefix}-{position:04d}",
                text=text,
                guide=guide.title,
                path=guide.path,
                section=" > ".join(headings),
                position=position,
                file_sha256=guide.sha256,
            )
        )
    return chunks


def guide_chunks(guide: Guide, chunk_size: int, chunk_overlap: int) -> list[Chunk]:
    """What is indexed for a guide: its chunks, then its card, placed after the last chunk."""
    chunks = chunk_guide(guide, chunk_size, chunk_overlap)
    sections = list(dict.fromkeys(heading for c in chunks if c.section for heading in c.section.split(" > ")))
    position = len(chunks)
    card = Chunk(
        id=f"{_id_prefix(guide)}-{position:04d}",
        text=guide_card(guide, sections),
        guide=guide.title,
        path=guide.path,
        section="About this guide",
        position=position,
        file_sha256=guide.sha256,
        kind=ABOUT,
    )
    return [*chunks, card]


CARD_FIELD_CHARS = 300  # a field of a card at most: front matter and headings are the guide's, any length
CARD_SECTIONS = 12  # the sections a card names at most
CARD_AUTHOR = "Written by:"  # the card's line naming who wrote the guide


def guide_card(guide: Guide, sections: Sequence[str]) -> str:
    """The guide as a text, in one passage: its title, what its front matter says of where it
    comes from and who wrote it, its length and sections, and the sentences it opens with (often
    whom it is for). A question about the guide itself ("who wrote the chapter?", "who is it
    aimed at?") otherwise finds only passages about its subject.

    Line breaks in a field become spaces, and other spacing is kept: collapsing "I g n o r e   a l l"
    to single spaces would hide it from the planted-text check (tutor.injection)."""
    meta = {name: _one_line(value) for name, value in guide.meta.items()}
    lines = [_said("The guide", f'"{_one_line(guide.title)}"')]
    if meta.get("origin"):
        lines.append(_said("What it is:", meta["origin"]))
    by = meta.get("author") or next(iter(split_sentences(meta.get("credit", ""))), "")
    if by:
        lines.append(_said(CARD_AUTHOR, by))
    if meta.get("reading_time"):
        lines.append(_said("Reading time:", meta["reading_time"]))
    lines.append(f"Length: about {len(guide.text.split())} words.")
    if sections:
        named = [_one_line(section, 80) for section in sections[:CARD_SECTIONS]]
        lines.append(_said("Sections:", "; ".join(named) + ("; …" if len(sections) > CARD_SECTIONS else "")))
    paragraphs = (re.sub(r"(?m)^#.*$", "", p) for p in re.split(r"\n\s*\n", guide.text))
    opening = next((p for p in paragraphs if p.strip()), "")
    if opening:
        lines.append("It opens: " + _first_sentences(_one_line(opening, len(opening)), CARD_FIELD_CHARS))
    return "\n".join(lines)


def card_name(card: str) -> str:
    """The lines of a card (`guide_card`) that name its guide: its title, and its author if known."""
    lines = card.split("\n")
    return " ".join([lines[0], *(line for line in lines if line.startswith(CARD_AUTHOR))])


def _one_line(value: str, limit: int = CARD_FIELD_CHARS) -> str:
    return re.sub(r"\s*\n\s*", " ", value).strip()[:limit]


def _said(label: str, value: str) -> str:
    """A line of the card, ended once: "Want to know more?" takes no full stop after it."""
    return f"{label} {value}" if value.endswith((".", "?", "!", "…")) else f"{label} {value}."


def _first_sentences(text: str, limit: int) -> str:
    """As many whole sentences as fit in `limit` characters (the first one cut if it alone does not)."""
    kept = ""
    for sentence in split_sentences(text):
        if len(kept) + len(sentence) + 1 > limit:
            break
        kept = f"{kept} {sentence}".strip()
    return kept or text[:limit]


def _id_prefix(guide: Guide) -> str:
    return hashlib.sha256(f"{guide.path}\0{guide.sha256}".encode()).hexdigest()[:16]


def corpus_version(files: dict[str, str]) -> str:
    """A short content hash of the whole corpus: changes when any guide does."""
    digest = hashlib.sha256()
    for path, sha in sorted(files.items()):
        digest.update(f"{path}\0{sha}\n".encode())
    return digest.hexdigest()[:12]


def _chroma_client(path: Path) -> Any:
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    return chromadb.PersistentClient(path=str(path), settings=ChromaSettings(anonymized_telemetry=False))


@dataclass(frozen=True)
class OpenedVersion:
    """One index version opened for reading: vectors and texts in Chroma, words in SQLite."""

    name: str
    client: Any
    collection: Any
    manifest: dict[str, Any]
    words: LexicalIndex


def embedded_by(manifest: dict[str, Any] | None) -> str:
    """The embedding model an index version was built with ("" for none recorded)."""
    return str((manifest or {}).get("settings", {}).get("embed_model") or "")


@dataclass(frozen=True)
class IngestReport:
    """What one ingest did."""

    added: tuple[str, ...]
    changed: tuple[str, ...]
    removed: tuple[str, ...]
    unchanged: int
    chunks_embedded: int
    chunks_total: int
    corpus_version: str
    seconds: float

    @property
    def noop(self) -> bool:
        return not (self.added or self.changed or self.removed)


@contextmanager
def ingest_lock(folder: Path) -> Iterator[None]:
    """Only one ingest at a time on this machine; a second one is refused, not queued."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ".lock").open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise IngestBusyError(f"another ingest is running on {folder}; try again when it ends") from None
        yield


class Store(Protocol):
    """Where the index versions live: a folder (FolderStore) or a Chroma server (ChromaServerStore).

    Readers use `current_version`, `read_manifest` and `open_version`; an ingest holds `lock`,
    fills a staging version (its collection, and its word index where the store keeps one) and
    publishes it in one atomic step, or discards it.
    """

    def current_version(self) -> str | None: ...
    def read_manifest(self) -> dict[str, Any] | None: ...
    def open_version(self) -> OpenedVersion: ...
    def lock(self) -> AbstractContextManager[None]: ...
    def new_staging(self, copy_current: bool) -> Any: ...
    def open_staging(self, staging: Any) -> AbstractContextManager[tuple[Any, LexicalIndex | None]]: ...
    def discard(self, staging: Any) -> None: ...
    def publish(self, staging: Any, manifest: dict[str, Any]) -> Any: ...


class FolderStore:
    """The versioned index folder: which version answers, and how a new one is published."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def current_version(self) -> str | None:
        """A name that changes whenever a new version is published."""
        folder = self.current_dir()
        return folder.name if folder else None

    def current_dir(self) -> Path | None:
        try:
            name = (self.root / "CURRENT").read_text().strip()
        except FileNotFoundError:
            return None
        folder = self.root / name
        return folder if name and folder.is_dir() else None

    def read_manifest(self) -> dict[str, Any] | None:
        folder = self.current_dir()
        if folder is None:
            return None
        try:
            manifest: dict[str, Any] = json.loads((folder / MANIFEST).read_text())
        except (OSError, ValueError):
            return None
        return manifest if manifest.get("format") == FORMAT else None

    def open_version(self) -> OpenedVersion:
        """The current version, for reading."""
        folder = self.current_dir()
        manifest = self.read_manifest()
        if folder is None or manifest is None:
            raise IndexMissingError(f"no index in {self.root}: run `tutor ingest` first")
        try:
            words = LexicalIndex(folder / LEXICAL)
            client = _chroma_client(folder)
            return OpenedVersion(folder.name, client, client.get_collection(COLLECTION), manifest, words)
        except Exception as exc:  # chromadb raises many kinds for a damaged store
            raise IndexMissingError(f"the index in {folder} cannot be opened ({exc}): run `tutor ingest`") from None

    def lock(self) -> AbstractContextManager[None]:
        return ingest_lock(self.root)

    def new_staging(self, copy_current: bool) -> Path:
        for stale in self.root.glob(".staging-*"):  # left by a killed ingest; we hold the lock
            shutil.rmtree(stale, ignore_errors=True)
        staging = self.root / f".staging-{time.time_ns()}"
        current = self.current_dir()
        try:
            if copy_current and current is not None:
                shutil.copytree(current, staging)
            else:
                staging.mkdir()
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return staging

    @contextmanager
    def open_staging(self, staging: Path) -> Iterator[tuple[Any, LexicalIndex]]:
        """The staging version's collection and word index, for writing."""
        client = _chroma_client(staging)
        words = LexicalIndex(staging / LEXICAL, writable=True)
        try:
            yield client.get_or_create_collection(COLLECTION, configuration={"hnsw": {"space": "cosine"}}), words
            words.finish()
        finally:
            words.close()
            client.close()

    def discard(self, staging: Path) -> None:
        shutil.rmtree(staging, ignore_errors=True)

    def publish(self, staging: Path, manifest: dict[str, Any]) -> Path:
        """Make a finished staging folder the current version, atomically; keep one previous."""
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=1))
        previous = self.current_dir()
        version = self.root / f"v-{time.time_ns()}"
        os.replace(staging, version)
        pointer = self.root / ".CURRENT.tmp"
        with pointer.open("w") as handle:
            handle.write(version.name)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(pointer, self.root / "CURRENT")
        for old in self.root.glob("v-*"):
            if old not in (version, previous):
                shutil.rmtree(old, ignore_errors=True)
        return version


def ingest(
    guides: Sequence[Guide],
    store: Store,
    *,
    embedder: Embedder,
    chunk_size: int,
    chunk_overlap: int,
    progress: bool = False,
) -> IngestReport:
    """Make the index hold exactly these guides, embedding only what changed."""
    started = time.perf_counter()
    files = {guide.path: guide.sha256 for guide in guides}
    settings = {"embed_model": embedder.model_id, "chunk_size": chunk_size, "chunk_overlap": chunk_overlap}
    with store.lock():
        manifest = store.read_manifest()
        compatible = manifest is not None and manifest.get("settings") == settings
        old_files: dict[str, str] = manifest["files"] if manifest and compatible else {}
        added = tuple(p for p in files if p not in old_files)
        changed = tuple(p for p in files if p in old_files and old_files[p] != files[p])
        removed = tuple(p for p in old_files if p not in files)
        unchanged = len(files) - len(added) - len(changed)
        if compatible and not (added or changed or removed):
            return IngestReport(
                (),
                (),
                (),
                unchanged,
                0,
                manifest["chunks"] if manifest else 0,
                corpus_version(files),
                time.perf_counter() - started,
            )
        new_chunks = [
            chunk
            for guide in guides
            if guide.path in added + changed
            for chunk in guide_chunks(guide, chunk_size, chunk_overlap)
        ]
        staging = None
        try:
            staging = store.new_staging(copy_current=compatible)  # a full disk can fail the copy here
            with store.open_staging(staging) as (collection, words):
                total = _apply(collection, words, new_chunks, changed + removed, embedder, progress)
            version = corpus_version(files)
            store.publish(
                staging,
                {
                    "format": FORMAT,
                    "settings": settings,
                    "files": files,
                    "chunks": total,
                    "corpus_version": version,
                    "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                },
            )
        except BaseException as exc:
            if staging is not None:
                store.discard(staging)
            if isinstance(exc, TutorError) or not isinstance(exc, Exception):  # said already, or Ctrl-C
                raise
            # A full disk reaches us as OSError from Python and as "disk I/O error" from Chroma.
            raise TutorError(f"ingest failed, the previous index is unchanged: {_why(exc)}") from None
    return IngestReport(
        added, changed, removed, unchanged, len(new_chunks), total, version, time.perf_counter() - started
    )


def _why(exc: BaseException) -> str:
    """One line for a failure; shutil.Error carries a list of (source, target, why)."""
    if isinstance(exc, shutil.Error) and exc.args and isinstance(exc.args[0], list) and exc.args[0]:
        return str(exc.args[0][0][-1])
    return " ".join(str(exc).split())[:300] or type(exc).__name__


def _apply(
    collection: Any,
    words: LexicalIndex | None,
    chunks: list[Chunk],
    stale_paths: Sequence[str],
    embedder: Embedder,
    progress: bool,
) -> int:
    for path in stale_paths:
        collection.delete(where={"path": path})
    if words is not None:
        words.remove_paths(stale_paths)
        # Cards stay out of the word index: their words would shift every chunk's BM25 statistics.
        words.add((c.id, c.path, chunk_words(c.guide, c.section, c.text)) for c in chunks if c.kind == TEXT)
        words.add_spellings((c.path, guide_words(f"{c.guide} {c.section} {c.text}")) for c in chunks)
    # A bar only where there is a wait worth watching.
    vectors = embedder.embed([chunk.embed_text for chunk in chunks], progress=progress and len(chunks) >= 64)
    batch = 256
    for start in range(0, len(chunks), batch):
        part = chunks[start : start + batch]
        collection.add(
            ids=[c.id for c in part],
            documents=[c.text for c in part],
            metadatas=[c.metadata() for c in part],
            embeddings=vectors[start : start + batch],
        )
    count: int = collection.count()
    return count
