"""PDF text layer via pypdf: one section per page, named after the outline where there is one."""

from __future__ import annotations

import io
from typing import Any

from pypdf import PdfReader
from pypdf.generic import Destination

from shipyard.knowledge.parsers.common import PDF, Collector, ParseLimits, file_stem, one_line
from shipyard.knowledge.types import DocumentRejected, ParsedDocument


class _NoDecryptReader(PdfReader):
    # PdfReader's constructor silently tries the empty user password on encrypted files; the
    # policy is to refuse encrypted documents without attempting any decryption at all.
    def _handle_encryption(self, password: str | bytes | None) -> None:
        raise DocumentRejected("encrypted", "the PDF is encrypted")


def parse_pdf(filename: str, content: bytes, limits: ParseLimits) -> ParsedDocument:
    reader = _NoDecryptReader(io.BytesIO(content))
    if reader.is_encrypted:  # in case a future pypdf no longer routes through the hook
        raise DocumentRejected("encrypted", "the PDF is encrypted")
    pages = reader.pages
    if len(pages) > limits.max_pdf_pages:
        raise DocumentRejected(
            "too_many_pages",
            f"{len(pages)} pages exceed the limit of {limits.max_pdf_pages}",
        )
    outline = _outline_titles(reader)
    collector = Collector(limits)
    blank: list[int] = []
    current_title: str | None = None
    for number, page in enumerate(pages, start=1):
        current_title = outline.get(number - 1, current_title)
        text = page.extract_text() or ""
        if not text.strip():
            blank.append(number)
            continue
        heading = f"{current_title} (page {number})" if current_title else f"Page {number}"
        collector.start_section(heading)
        collector.add(text)
    if not collector.has_text:
        raise DocumentRejected(
            "empty", "the PDF has no text layer (a scan needs OCR before it can be indexed)"
        )
    if blank:
        shown = ", ".join(str(n) for n in blank[:20]) + (" ..." if len(blank) > 20 else "")
        collector.warnings.append(f"pages without extractable text: {shown}")
    return collector.build(title=_title(reader) or file_stem(filename), media_type=PDF)


def _title(reader: PdfReader) -> str:
    try:
        metadata = reader.metadata
        raw = metadata.title if metadata is not None else None
    except Exception:  # broken metadata must not cost us the text
        return ""
    return one_line(raw) if isinstance(raw, str) else ""


def _outline_titles(reader: PdfReader) -> dict[int, str]:
    """Top-level bookmarks by 0-based start page: better headings than "Page N"."""
    try:
        items: list[Any] = list(reader.outline)
    except Exception:  # bookmarks are optional decoration
        return {}
    titles: dict[int, str] = {}
    for item in items[:1000]:
        if not isinstance(item, Destination):
            continue  # a nested list holds sub-bookmarks; the top level is enough
        page = _page_number(reader, item)
        title = one_line(str(item.title or ""))
        if page is not None and page >= 0 and title:
            titles.setdefault(page, title)
    return titles


def _page_number(reader: PdfReader, destination: Destination) -> int | None:
    try:
        return reader.get_destination_page_number(destination)
    except Exception:  # a dangling bookmark just goes unused
        return None
