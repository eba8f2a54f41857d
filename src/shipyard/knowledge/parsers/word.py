"""DOCX via python-docx, after the archive has been checked for zip bombs and XML entities."""

from __future__ import annotations

import io
import re
import zipfile

import docx
from docx.table import Table
from docx.text.paragraph import Paragraph

from shipyard.knowledge.parsers.common import DOCX, Collector, ParseLimits, file_stem, one_line
from shipyard.knowledge.types import DocumentRejected, ParsedDocument

MAX_ZIP_ENTRIES = 1000
MAX_TABLE_NESTING = 8
_HEADING_STYLE = re.compile(r"(?:heading\s*\d+|title)", re.IGNORECASE)
_XML_DECLARATIONS = re.compile(rb"<!\s*(?:DOCTYPE|ENTITY)", re.IGNORECASE)


def check_archive(content: bytes, limits: ParseLimits) -> None:
    """Reject archives that would expand beyond the limits or carry DTDs.

    Runs on the central directory before any entry is inflated; zipfile refuses to inflate
    an entry past its declared size, so the declared sizes are a safe bound.
    """
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        entries = archive.infolist()
        if len(entries) > MAX_ZIP_ENTRIES:
            raise DocumentRejected(
                "zip_bomb", f"{len(entries)} archive entries (limit {MAX_ZIP_ENTRIES})"
            )
        total = 0
        for entry in entries:
            total += entry.file_size
            if total > limits.max_zip_uncompressed:
                raise DocumentRejected(
                    "zip_bomb",
                    f"archive expands beyond {limits.max_zip_uncompressed} bytes",
                )
            ratio = entry.file_size / entry.compress_size if entry.compress_size else None
            if entry.file_size and (ratio is None or ratio > limits.max_zip_ratio):
                raise DocumentRejected(
                    "zip_bomb",
                    f"an archive entry is compressed more than {limits.max_zip_ratio:g}:1",
                )
        for entry in entries:
            if entry.filename.lower().endswith((".xml", ".rels")) and _declares_dtd(
                archive.read(entry)
            ):
                # lxml would not expand entities for python-docx, but a DTD has no business
                # in a Word part and is the hallmark of XXE / billion-laughs payloads.
                raise DocumentRejected("malformed", "document XML declares a DTD or entities")


def _declares_dtd(xml: bytes) -> bool:
    if xml.startswith((b"\xff\xfe", b"\xfe\xff")):
        xml = xml.decode("utf-16", errors="replace").encode("utf-8")
    return _XML_DECLARATIONS.search(xml) is not None


def parse_docx(filename: str, content: bytes, limits: ParseLimits) -> ParsedDocument:
    check_archive(content, limits)
    document = docx.Document(io.BytesIO(content))
    collector = Collector(limits)
    for item in document.iter_inner_content():
        if isinstance(item, Paragraph):
            style = item.style
            name = style.name if style is not None else None
            if name and _HEADING_STYLE.fullmatch(name.strip()) and item.text.strip():
                collector.start_section(item.text, heading_in_text=True)
            else:
                collector.add(item.text)
        else:
            collector.add(_table_text(item, 0))
    title = one_line(document.core_properties.title or "")
    return collector.build(title=title or file_stem(filename), media_type=DOCX)


def _table_text(table: Table, depth: int) -> str:
    """One line per row, cells separated by " | "; merged cells are reported once."""
    if depth >= MAX_TABLE_NESTING:
        return ""
    lines: list[str] = []
    for row in table.rows:
        cells: list[str] = []
        seen: set[int] = set()
        for cell in row.cells:
            if id(cell._tc) in seen:  # a horizontally merged cell repeats per grid column
                continue
            seen.add(id(cell._tc))
            parts = [
                part.text if isinstance(part, Paragraph) else _table_text(part, depth + 1)
                for part in cell.iter_inner_content()
            ]
            text = " ".join(" ".join(parts).split())
            if text:
                cells.append(text)
        if cells:
            lines.append(" | ".join(cells))
    return "\n".join(lines)
