"""Reading guides (.md, .txt, .html, .pdf) into Markdown-ish text with a title and a content hash."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .errors import CorpusError

SUPPORTED_SUFFIXES = (".md", ".markdown", ".txt", ".html", ".htm", ".pdf")
_FRONT_MATTER = re.compile(r"\A---\s*\n(.*?)\n---\s*\n", re.DOTALL)


@dataclass(frozen=True)
class Guide:
    """One guide: its text as Markdown (headings as #), title, and hash of its raw bytes."""

    path: str
    title: str
    text: str
    sha256: str
    meta: dict[str, str] = field(default_factory=dict)


def find_guide_files(paths: Iterable[Path]) -> list[Path]:
    """Expand folders into their supported files; a named file of another type is an error."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(
                p
                for p in sorted(path.rglob("*"))
                if p.is_file()
                and p.suffix.lower() in SUPPORTED_SUFFIXES
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
        elif path.is_file():
            if path.suffix.lower() not in SUPPORTED_SUFFIXES:
                raise CorpusError(
                    f"{path}: unsupported file type {path.suffix or '(none)'}; "
                    f"supported: {', '.join(SUPPORTED_SUFFIXES)}"
                )
            found.append(path)
        else:
            raise CorpusError(f"{path}: no such file or folder")
    return found


def read_guide(path: Path, display_path: str | None = None) -> Guide:
    """Read one guide; any problem with it is a CorpusError naming the file."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise CorpusError(f"{path}: cannot read: {exc.strerror or exc}") from None
    suffix = path.suffix.lower()
    meta: dict[str, str]
    try:
        if suffix == ".pdf":
            text, meta = _pdf_text(path), {}
        else:
            decoded = raw.decode("utf-8-sig")
            if suffix in (".html", ".htm"):
                text, meta = _html_text(decoded)
            else:
                text, meta = split_front_matter(decoded)
    except UnicodeDecodeError:
        raise CorpusError(f"{path}: not valid UTF-8 text") from None
    except CorpusError as exc:
        raise CorpusError(f"{path}: {exc}") from None
    except Exception as exc:  # a malformed PDF or HTML file: the parsers raise many kinds
        raise CorpusError(f"{path}: cannot parse: {exc}") from None
    if not text.strip():
        raise CorpusError(f"{path}: no text in this guide")
    title = meta.get("title") or _first_heading(text) or path.stem.replace("-", " ").replace("_", " ")
    return Guide(
        path=display_path or path.as_posix(),
        title=title,
        text=text,
        sha256=hashlib.sha256(raw).hexdigest(),
        meta=meta,
    )


def read_guides(paths: Sequence[Path]) -> list[Guide]:
    """Every guide under `paths`, all read before anything is done with them; none is an error."""
    files = find_guide_files(paths)
    if not files:
        raise CorpusError(f"no guides ({', '.join(SUPPORTED_SUFFIXES)}) in {', '.join(map(str, paths))}")
    return [read_guide(path, display_path=_display_path(path)) for path in files]


def _display_path(path: Path) -> str:
    """The path as the user would write it: relative to the working folder when inside it."""
    resolved = path.resolve()
    try:
        return resolved.relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return resolved.as_posix()


def split_front_matter(text: str) -> tuple[str, dict[str, str]]:
    """Split YAML front matter (between --- lines) from the body."""
    match = _FRONT_MATTER.match(text)
    if not match:
        return text, {}
    try:
        meta = yaml.safe_load(match.group(1)) or {}
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" (line {where.line + 2})" if where else ""
        raise CorpusError(f"malformed front matter{line}: {getattr(exc, 'problem', None) or exc}") from None
    if not isinstance(meta, dict):
        raise CorpusError("front matter is not a mapping of names to values")
    # An empty value ("author:") is no value, not the word "None"; a list reads as one line.
    return text[match.end() :], {
        str(k): ", ".join(map(str, v)) if isinstance(v, list) else str(v)
        for k, v in meta.items()
        if v is not None and v != ""
    }


def _first_heading(text: str) -> str | None:
    match = re.search(r"^#{1,6}\s+(.+?)\s*$", text, re.MULTILINE)
    return match.group(1) if match else None


def _html_text(html: str) -> tuple[str, dict[str, str]]:
    """HTML to Markdown-ish text: headings become #, scripts and page chrome are dropped."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    for tag in soup(["script", "style", "nav", "header", "footer", "aside", "noscript"]):
        tag.decompose()
    meta = {}
    if soup.title and soup.title.string:
        meta["title"] = soup.title.string.strip()
    for level in range(1, 7):
        for heading in soup.find_all(f"h{level}"):
            heading.replace_with(f"\n\n{'#' * level} {heading.get_text(' ', strip=True)}\n\n")
    for item in soup.find_all("li"):
        item.replace_with(f"\n- {item.get_text(' ', strip=True)}\n")
    body = soup.body or soup
    text = body.get_text()
    text = re.sub(r"[ \t]+", " ", text)
    text = re.sub(r"\n\s*\n\s*", "\n\n", text)
    return text.strip() + "\n", meta


def _pdf_text(path: Path) -> str:
    from pypdf import PdfReader

    reader = PdfReader(str(path))
    return "\n\n".join((page.extract_text() or "").strip() for page in reader.pages).strip() + "\n"
