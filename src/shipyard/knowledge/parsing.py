"""Turn an uploaded file into a :class:`ParsedDocument`, or refuse it with a stable code.

Formats: PDF, DOCX, HTML, Markdown, plain text and e-mail (.eml). The type is decided from
the file's bytes *and* its name (or the declared media type when the name has no known
extension); when they disagree the file is refused instead of guessed at.

Rejection codes (``DocumentRejected.code``): ``too_large``, ``empty``, ``encrypted``,
``zip_bomb``, ``malformed``, ``type_mismatch``, ``unsupported_type``, ``too_many_pages``,
``bad_encoding``.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable

from shipyard.knowledge.parsers.common import (
    DOCX,
    EML,
    HTML,
    MARKDOWN,
    PDF,
    TEXT,
    Collector,
    ParseLimits,
    decode_text,
    extension,
    file_stem,
)
from shipyard.knowledge.parsers.mail import parse_eml
from shipyard.knowledge.parsers.markup import parse_html, parse_markdown
from shipyard.knowledge.parsers.pdf import parse_pdf
from shipyard.knowledge.parsers.word import parse_docx
from shipyard.knowledge.types import DocumentRejected, ParsedDocument

__all__ = [
    "DOCX",
    "EML",
    "HTML",
    "MARKDOWN",
    "PDF",
    "SUPPORTED_TYPES",
    "TEXT",
    "ParseLimits",
    "detect_media_type",
    "parse_document",
]

SUPPORTED_TYPES: frozenset[str] = frozenset({PDF, DOCX, HTML, MARKDOWN, TEXT, EML})
_BINARY_TYPES = frozenset({PDF, DOCX})
_BY_EXTENSION = {
    ".pdf": PDF,
    ".docx": DOCX,
    ".html": HTML,
    ".htm": HTML,
    ".md": MARKDOWN,
    ".markdown": MARKDOWN,
    ".txt": TEXT,
    ".eml": EML,
}
_DECLARED_ALIASES = {
    "application/x-pdf": PDF,
    "application/xhtml+xml": HTML,
    "text/x-markdown": MARKDOWN,
}
# Signatures of common binary formats that can lack NUL bytes near the start.
_OTHER_BINARY_MAGIC = (
    b"\x89PNG",
    b"\xff\xd8\xff",
    b"GIF87a",
    b"GIF89a",
    b"\x1f\x8b",
    b"\x7fELF",
    b"Rar!",
    b"7z\xbc\xaf",
)
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"

Parser = Callable[[str, bytes, ParseLimits], ParsedDocument]


def detect_media_type(filename: str, content: bytes, declared: str | None = None) -> str:
    """The supported media type of ``content``, or :class:`DocumentRejected`.

    Binary formats are recognised by their bytes; text formats by the file extension, or by
    ``declared`` (e.g. an upload's Content-Type) when the extension is unknown.
    """
    claimed = _BY_EXTENSION.get(extension(filename)) or _canonical(declared)
    sniffed, what = _sniff(content, claimed)
    if sniffed in _BINARY_TYPES:
        if claimed in (None, sniffed):
            return sniffed
        raise DocumentRejected(
            "type_mismatch", f"the name or declared type says {claimed} but the bytes are {what}"
        )
    if sniffed is None:  # binary of a kind we do not read
        if claimed is None:
            raise DocumentRejected("unsupported_type", f"unsupported file type ({what})")
        raise DocumentRejected(
            "type_mismatch", f"the name or declared type says {claimed} but the bytes are {what}"
        )
    if claimed is None:
        raise DocumentRejected("unsupported_type", f"unsupported file type for {filename!r}")
    if claimed in _BINARY_TYPES:
        raise DocumentRejected(
            "type_mismatch", f"the name or declared type says {claimed} but the bytes are {what}"
        )
    return claimed


def parse_document(
    filename: str,
    content: bytes,
    *,
    declared_type: str | None = None,
    limits: ParseLimits = ParseLimits(),
) -> ParsedDocument:
    """Parse one file. Raises :class:`DocumentRejected` and nothing else for bad input."""
    return _parse(filename, content, declared_type, limits, nested=False)


def _parse(
    filename: str,
    content: bytes,
    declared: str | None,
    limits: ParseLimits,
    *,
    nested: bool,
) -> ParsedDocument:
    if len(content) > limits.max_bytes:
        raise DocumentRejected(
            "too_large", f"{len(content)} bytes exceed the limit of {limits.max_bytes}"
        )
    if not content.strip():
        raise DocumentRejected("empty", "the file is empty")
    media_type = detect_media_type(filename, content, declared)
    try:
        if media_type == EML:
            return parse_eml(filename, content, limits, _attachment_parser(limits), nested=nested)
        return _PARSERS[media_type](filename, content, limits)
    except DocumentRejected:
        raise
    except Exception as error:
        # Parsing libraries raise anything from KeyError to RecursionError on hostile input;
        # the class name is enough to diagnose, the message may quote the file's content.
        raise DocumentRejected(
            "malformed", f"could not read the file as {media_type} ({type(error).__name__})"
        ) from None


def _attachment_parser(
    limits: ParseLimits,
) -> Callable[[str, bytes, str | None, bool], ParsedDocument]:
    def parse(filename: str, content: bytes, declared: str | None, nested: bool) -> ParsedDocument:
        return _parse(filename, content, declared, limits, nested=nested)

    return parse


def _parse_text(filename: str, content: bytes, limits: ParseLimits) -> ParsedDocument:
    collector = Collector(limits)
    collector.add(decode_text(content))
    return collector.build(title=file_stem(filename), media_type=TEXT)


_PARSERS: dict[str, Parser] = {
    PDF: parse_pdf,
    DOCX: parse_docx,
    HTML: parse_html,
    MARKDOWN: parse_markdown,
    TEXT: _parse_text,
}


def _canonical(declared: str | None) -> str | None:
    if not declared:
        return None
    media_type = declared.split(";", 1)[0].strip().lower()
    media_type = _DECLARED_ALIASES.get(media_type, media_type)
    return media_type if media_type in SUPPORTED_TYPES else None


def _sniff(content: bytes, claimed: str | None) -> tuple[str | None, str]:
    """(PDF, DOCX, "text" or None for other binary data, description for messages)."""
    if content[:1024].lstrip().startswith(b"%PDF-"):
        return PDF, "a PDF"
    if content.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        try:
            with zipfile.ZipFile(io.BytesIO(content)) as archive:
                is_docx = "word/document.xml" in archive.namelist()
        except Exception:
            # A damaged archive named .docx is a broken Word file (malformed), not a mismatch.
            return (DOCX if claimed == DOCX else None), "a damaged zip archive"
        return (DOCX, "a Word document") if is_docx else (None, "a zip archive")
    if content.startswith(_OLE_MAGIC):
        return None, "an OLE compound file (legacy Office or password-protected document)"
    # Like git: a NUL byte near the start means binary. Stray NULs later on in a long text
    # are dropped by normalisation rather than failing the whole file.
    if content.startswith(_OTHER_BINARY_MAGIC) or b"\x00" in content[:8192]:
        return None, "binary data"
    return "text", "text"
