"""The index on a Chroma server (`chroma run`), shared by several tutors: TUTOR_CHROMA_URL.

The same versions as the folder index, as collections: an ingest fills `staging_guides_<ns>`
(a copy of the current version plus what changed), renames it `guides_v<ns>` and then points the
`tutor_current` collection's metadata at it, with the manifest, in one request: readers see the
old version or the new one, never a mix. One previous version is kept for readers still on it.

The server keeps vectors and texts; the word index (tutor.lexical) is a file on each machine,
built once per version from the server's texts, a page at a time, and kept in `lock_dir/words/`.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .errors import IndexMissingError, IngestBusyError
from .index import FORMAT, TEXT, OpenedVersion, ingest_lock
from .lexical import LexicalIndex, build_from_collection

POINTER = "tutor_current"
VERSION_PREFIX = "guides_v"
STAGING_PREFIX = "staging_guides_"
STALE_STAGING_S = 3600  # a staging collection this old was left by a killed ingest
COPY_PAGE = 1000


class ChromaServerStore:
    """Index versions on a Chroma server; `lock_dir` holds this machine's ingest lock."""

    def __init__(self, url: str, lock_dir: Path) -> None:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise IndexMissingError(f"TUTOR_CHROMA_URL must look like http://HOST:PORT, not {url!r}")
        self.url = url
        self._where = (
            parts.hostname,
            parts.port or (443 if parts.scheme == "https" else 8000),
            parts.scheme == "https",
        )
        self.lock_dir = lock_dir
        self._client: Any = None
        self._base: str | None = None  # the version an ingest started from

    def client(self) -> Any:
        if self._client is None:
            import chromadb
            from chromadb.config import Settings as ChromaSettings

            host, port, ssl = self._where
            try:
                self._client = chromadb.HttpClient(
                    host=host, port=port, ssl=ssl, settings=ChromaSettings(anonymized_telemetry=False)
                )
            except Exception as exc:  # chromadb checks the server on connect
                raise IndexMissingError(f"the Chroma server at {self.url} does not answer ({exc})") from None
        return self._client

    def _pointer(self) -> dict[str, Any]:
        try:
            return dict(self.client().get_collection(POINTER).metadata or {})
        except IndexMissingError:
            raise
        except Exception as exc:
            if "does not exist" in str(exc) or type(exc).__name__ == "NotFoundError":
                return {}
            raise IndexMissingError(f"the Chroma server at {self.url} does not answer ({exc})") from None

    def current_version(self) -> str | None:
        return self._pointer().get("current") or None

    def read_manifest(self) -> dict[str, Any] | None:
        try:
            manifest: dict[str, Any] = json.loads(self._pointer().get("manifest") or "null") or {}
        except ValueError:
            return None
        return manifest if manifest.get("format") == FORMAT else None

    def open_version(self) -> OpenedVersion:
        pointer = self._pointer()
        manifest = self.read_manifest()
        name = pointer.get("current")
        if not name or manifest is None:
            raise IndexMissingError(f"no index on the Chroma server at {self.url}: run `tutor ingest` first")
        try:
            collection = self.client().get_collection(name)
            return OpenedVersion(name, self.client(), collection, manifest, self._words(name, collection))
        except Exception as exc:
            raise IndexMissingError(f"the index on {self.url} cannot be opened ({exc}): run `tutor ingest`") from None

    def _words(self, version: str, collection: Any) -> LexicalIndex:
        """This machine's word index of a version, built from the server's texts the first time."""
        folder = self.lock_dir / "words"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{version}.sqlite"
        if path.is_file():
            return LexicalIndex(path)
        for old in folder.glob(f"{VERSION_PREFIX}*.sqlite"):  # versions the server no longer serves
            if old.stem not in (version, self._pointer().get("previous")):
                old.unlink(missing_ok=True)
        return build_from_collection(collection, path, TEXT, page=COPY_PAGE)

    def lock(self) -> AbstractContextManager[None]:
        return ingest_lock(self.lock_dir)

    def new_staging(self, copy_current: bool) -> str:
        client = self.client()
        now = time.time_ns()
        for name in self._names(STAGING_PREFIX):
            if now - int(name.removeprefix(STAGING_PREFIX)) > STALE_STAGING_S * 1e9:
                client.delete_collection(name)
        self._base = self.current_version()
        staging = f"{STAGING_PREFIX}{now}"
        target = client.create_collection(staging, configuration={"hnsw": {"space": "cosine"}})
        if copy_current and self._base:
            source = client.get_collection(self._base)
            for offset in range(0, source.count(), COPY_PAGE):
                page = source.get(include=["documents", "metadatas", "embeddings"], limit=COPY_PAGE, offset=offset)
                target.add(
                    ids=page["ids"],
                    documents=page["documents"],
                    metadatas=page["metadatas"],
                    embeddings=page["embeddings"],
                )
        return staging

    @contextmanager
    def open_staging(self, staging: str) -> Iterator[tuple[Any, None]]:
        """The staging collection; its word index is built by each reader from the published version."""
        yield self.client().get_collection(staging), None

    def discard(self, staging: str) -> None:
        with contextlib.suppress(Exception):  # the server may be the reason the ingest failed
            self.client().delete_collection(staging)

    def publish(self, staging: str, manifest: dict[str, Any]) -> str:
        """Rename the staging collection to a version and point readers at it in one request."""
        client = self.client()
        current = self.current_version()
        if current != self._base:
            raise IngestBusyError(
                f"another ingest published to {self.url} while this one ran; run `tutor ingest` again"
            )
        version = f"{VERSION_PREFIX}{time.time_ns()}"
        client.get_collection(staging).modify(name=version)
        pointer = client.get_or_create_collection(POINTER)
        pointer.modify(metadata={"current": version, "previous": current or "", "manifest": json.dumps(manifest)})
        for name in self._names(VERSION_PREFIX):
            if name not in (version, current):
                with contextlib.suppress(Exception):
                    client.delete_collection(name)
        return version

    def _names(self, prefix: str) -> list[str]:
        return [c.name for c in self.client().list_collections() if c.name.startswith(prefix)]
