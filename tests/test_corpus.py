"""The cleaned corpus and the readers of each supported file type."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tutor.corpus import find_guide_files, read_guide, split_front_matter
from tutor.errors import CorpusError

from .conftest import CORPUS, SHARED_GUIDES

NOISE = [
    "voltooid",
    "hoofdstuk",
    "Related Resources",
    "Related Terms",
    "<img",
    "<aside",
    "email protected",
    "minute read",
    "Published:",
    "Learning Centre",
    "AI Readiness Assessment",
]


def _words(text: str) -> str:
    text = text.replace("’", "'").replace("‘", "'")
    return re.sub(r"\s+", " ", text).strip()


def test_five_guides_with_front_matter() -> None:
    guides = [read_guide(p) for p in sorted(CORPUS.glob("*.md"))]
    assert len(guides) == 5
    for guide in guides:
        assert {"title", "origin", "language", "credit"} <= set(guide.meta), guide.path
        assert guide.meta["language"] == "en"


def test_corpus_keeps_the_guides_words() -> None:
    """Every body line of every cleaned guide is the source's own text.

    Headings are structure added in cleaning (one guide had no title), so they are not checked.
    """
    sources = _words(" ".join(p.read_text() for p in SHARED_GUIDES.glob("*.txt")))
    for path in CORPUS.glob("*.md"):
        body, _ = split_front_matter(path.read_text())
        for line in body.splitlines():
            if line.startswith("#"):
                continue
            text = re.sub(r"^(-|\d+\.)\s+", "", line.strip())
            if text:
                assert _words(text) in sources, f"{path.name}: not in the source guides: {text[:60]}"


def test_corpus_has_no_scraping_noise() -> None:
    for path in CORPUS.glob("*.md"):
        text, _ = split_front_matter(path.read_text())
        for noise in NOISE:
            assert noise not in text, f"{path.name} still has {noise!r}"


def test_guides_have_headings() -> None:
    for path in CORPUS.glob("*.md"):
        assert re.search(r"^## ", path.read_text(), re.MULTILINE), path.name


def _minimal_pdf(text: str) -> bytes:
    """A one-page PDF with `text` in Helvetica, with a correct cross-reference table."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def test_reads_each_supported_type(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("---\ntitle: Alpha\n---\n# Alpha\n\n## Part\n\nMarkdown words.\n")
    (tmp_path / "b.txt").write_text("Plain text words.\n")
    (tmp_path / "c.html").write_text(
        "<html><head><title>Gamma</title><script>var x;</script></head><body><nav>Menu</nav>"
        "<h2>Section</h2><p>HTML words.</p><ul><li>one</li></ul></body></html>"
    )
    (tmp_path / "d.pdf").write_bytes(_minimal_pdf("PDF words here"))
    guides = {Path(g.path).suffix: g for g in map(read_guide, find_guide_files([tmp_path]))}
    assert guides[".md"].title == "Alpha" and "Markdown words." in guides[".md"].text
    assert guides[".txt"].title == "b" and guides[".txt"].text.startswith("Plain text")
    assert guides[".html"].title == "Gamma" and "## Section" in guides[".html"].text
    assert "Menu" not in guides[".html"].text and "var x" not in guides[".html"].text
    assert "PDF words here" in guides[".pdf"].text


def test_folder_skips_other_types_but_a_named_one_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.docx").write_bytes(b"PK")
    (tmp_path / "ok.md").write_text("# Ok\n\ntext\n")
    assert [p.name for p in find_guide_files([tmp_path])] == ["ok.md"]
    with pytest.raises(CorpusError, match=r"notes.docx: unsupported file type .docx"):
        find_guide_files([tmp_path / "notes.docx"])


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bad.md", b"\xff\xfe\x00 not utf-8 \xc3", "not valid UTF-8"),
        ("broken.pdf", b"%PDF-1.4 this is not a pdf", "cannot parse"),
        ("empty.txt", b"   \n", "no text"),
        ("front.md", b"---\n: [unclosed\n---\nbody\n", "front matter"),
    ],
)
def test_unreadable_guides_are_named(tmp_path: Path, name: str, content: bytes, message: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(CorpusError, match=message) as caught:
        read_guide(path)
    assert name in str(caught.value)


def test_missing_path_is_named(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="no such file or folder"):
        find_guide_files([tmp_path / "nowhere"])
