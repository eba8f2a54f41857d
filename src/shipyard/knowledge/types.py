"""Value types shared by the parsers, the chunker, the indexes and retrieval."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Section:
    """A stretch of a parsed document's text under one heading (``None`` before any heading)."""

    heading: str | None
    start: int  # character offsets into ParsedDocument.text
    end: int


@dataclass(frozen=True)
class ParsedDocument:
    """A document reduced to normalised plain text plus its structure.

    ``text`` is what citations point into: chunk and quote offsets are offsets in this string.
    """

    title: str
    text: str
    media_type: str
    sections: tuple[Section, ...]
    warnings: tuple[str, ...] = ()


class DocumentRejected(Exception):
    """A file that cannot or must not be indexed; ``code`` is stable, ``reason`` is for people."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class Chunk:
    """One retrievable piece of a document, with its place in the document's text."""

    index: int  # 0-based position within the document
    text: str  # exactly ParsedDocument.text[start:end]
    start: int
    end: int
    heading: str | None = None


@dataclass(frozen=True)
class DocumentRef:
    """What an index needs to know about the document whose chunks it stores."""

    tenant_id: str
    collection_id: str
    document_id: str
    groups: frozenset[str]


@dataclass(frozen=True)
class Scope:
    """Where a search may look: one tenant, some collections, and only documents that share
    at least one access group with the caller. The scope is applied inside every query."""

    tenant_id: str
    collection_ids: tuple[str, ...]
    groups: frozenset[str]


@dataclass(frozen=True)
class Hit:
    """One chunk found by a search, with its score under that search."""

    chunk_id: str
    document_id: str
    collection_id: str
    chunk_index: int
    text: str
    start: int
    end: int
    heading: str | None
    score: float
    scores: dict[str, float] = field(default_factory=dict)  # per retriever, for provenance


@dataclass(frozen=True)
class Passage:
    """A retrieved chunk with the document facts a citation needs."""

    hit: Hit
    title: str
    source: str
    collection: str
    flagged: bool  # the chunk reads like an instruction to a model (prompt injection)


EVERYONE = "everyone"
"""The access group every principal holds; documents ingested without groups carry it."""
