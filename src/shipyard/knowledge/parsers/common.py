"""Limits, media types, text normalisation and the block collector shared by the parsers."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from shipyard.knowledge.types import DocumentRejected, ParsedDocument, Section

PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
HTML = "text/html"
MARKDOWN = "text/markdown"
TEXT = "text/plain"
EML = "message/rfc822"

PARAGRAPH_BREAK = "\n\n"
MAX_HEADING_CHARS = 300


@dataclass(frozen=True)
class ParseLimits:
    """Resource ceilings for one document; anything beyond them is rejected, not truncated."""

    max_bytes: int = 20 * 1024 * 1024  # raw file size
    max_text_chars: int = 2_000_000  # extracted text
    max_pdf_pages: int = 2000
    # DOCX (zip) total uncompressed size. python-docx parses the XML whole (about 20x its
    # size in memory), so this bounds what one small upload can cost the worker.
    max_zip_uncompressed: int = 25 * 1024 * 1024
    max_zip_ratio: float = 100.0  # per-entry compression ratio -> zip bomb
    max_attachments: int = 20  # EML


# Unicode category Zs other than the ASCII space (no-break, en/em, thin, ideographic, ...).
_SPACE_SEPARATORS = (0x00A0, 0x1680, *range(0x2000, 0x200B), 0x202F, 0x205F, 0x3000)


def _translation_table() -> dict[int, str | None]:
    table: dict[int, str | None] = {}
    for code in (*range(0x00, 0x20), *range(0x7F, 0xA0)):
        table[code] = None
    table[ord("\t")] = " "
    table[ord("\n")] = "\n"
    # Page breaks and Unicode line separators still mean "new line" to a reader.
    for code in (0x0B, 0x0C, 0x85, 0x2028):
        table[code] = "\n"
    table[0x2029] = PARAGRAPH_BREAK
    table[0xFEFF] = None  # stray byte-order marks inside text
    for code in range(0xD800, 0xE000):
        table[code] = None  # lone surrogates cannot be stored as UTF-8
    for code in _SPACE_SEPARATORS:
        table[code] = " "
    return table


_TRANSLATE = _translation_table()
_SPACES = re.compile(r" {2,}")
_LINE_EDGE_SPACES = re.compile(r" *\n *")
_BLANK_RUNS = re.compile(r"\n{3,}")


def normalise_text(text: str) -> str:
    """Canonical form of extracted text: the offsets of sections and chunks point into it.

    Idempotent, so text normalised once (a block, an attachment) can be joined and normalised
    again without moving anything.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n").translate(_TRANSLATE)
    # Compose only after control characters are gone: removing one can bring a base letter
    # and its combining mark together. The steps below only touch ASCII whitespace.
    text = unicodedata.normalize("NFC", text)
    text = _SPACES.sub(" ", text)
    text = _LINE_EDGE_SPACES.sub("\n", text)
    text = _BLANK_RUNS.sub(PARAGRAPH_BREAK, text)
    return text.strip()


def one_line(text: str, limit: int = MAX_HEADING_CHARS) -> str:
    """Headings, titles and file names: a single normalised line of bounded length."""
    return " ".join(normalise_text(text).split())[:limit].strip()


def file_stem(filename: str) -> str:
    """The upload's name without directories (either slash) or its last extension."""
    base = re.split(r"[\\/]", filename)[-1]
    stem, dot, _ = base.rpartition(".")
    return one_line(stem if dot and stem else base)


def extension(filename: str) -> str:
    base = re.split(r"[\\/]", filename)[-1]
    _, dot, ext = base.rpartition(".")
    return "." + ext.lower() if dot else ""


def decode_text(content: bytes) -> str:
    """UTF-8 (with or without BOM); cp1252 only when every byte maps to a character."""
    try:
        return content.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        return content.decode("cp1252")
    except UnicodeDecodeError:
        raise DocumentRejected(
            "bad_encoding", "text is neither valid UTF-8 nor Windows-1252"
        ) from None


@dataclass
class _Block:
    heading: str | None
    parts: list[str] = field(default_factory=list)


class Collector:
    """Accumulates normalised paragraphs under headings and enforces the text budget early,
    so a decompression-heavy file is stopped before all of its text is held in memory."""

    def __init__(self, limits: ParseLimits) -> None:
        self._limits = limits
        self._blocks: list[_Block] = [_Block(None)]
        self._chars = 0
        self.warnings: list[str] = []

    def start_section(self, heading: str | None, *, heading_in_text: bool = False) -> None:
        """Open a new section; real headings (not synthetic ones like "Page 3") are also
        kept as the section's first line so that they are searchable and citable."""
        label = one_line(heading) if heading is not None else ""
        if heading is not None and not label:
            return  # an empty heading element changes nothing
        self._blocks.append(_Block(label or None))
        if heading is not None and label and heading_in_text:
            self.add(heading)  # in full: only the label is shortened

    def add(self, text: str) -> None:
        clean = normalise_text(text)
        if not clean:
            return
        self._chars += len(clean) + len(PARAGRAPH_BREAK)
        if self._chars > self._limits.max_text_chars + len(PARAGRAPH_BREAK):
            raise DocumentRejected(
                "too_large",
                f"extracted text exceeds the limit of {self._limits.max_text_chars} characters",
            )
        self._blocks[-1].parts.append(clean)

    @property
    def has_text(self) -> bool:
        return self._chars > 0

    def build(self, *, title: str, media_type: str) -> ParsedDocument:
        texts: list[str] = []
        sections: list[Section] = []
        position = 0
        for block in self._blocks:
            if not block.parts:
                continue
            text = normalise_text(PARAGRAPH_BREAK.join(block.parts))
            if texts:
                position += len(PARAGRAPH_BREAK)
            sections.append(Section(block.heading, position, position + len(text)))
            texts.append(text)
            position += len(text)
        full = PARAGRAPH_BREAK.join(texts)
        if not full:
            raise DocumentRejected("empty", "no extractable text")
        if len(full) > self._limits.max_text_chars:
            raise DocumentRejected(
                "too_large",
                f"extracted text exceeds the limit of {self._limits.max_text_chars} characters",
            )
        return ParsedDocument(
            title=title,
            text=full,
            media_type=media_type,
            sections=tuple(sections),
            warnings=tuple(self.warnings),
        )
