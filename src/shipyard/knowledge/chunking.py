"""Structure-aware chunking: split a parsed document into overlapping, citable pieces.

Chunks never cross a section boundary. Inside a section, paragraphs (blank-line separated)
are packed up to ``max_chars``; a longer paragraph is cut at sentence ends, a longer sentence
between words, and a word longer than ``max_chars`` (a URL, a base64 blob) at ``max_chars``.
Consecutive chunks of a section overlap by up to ``overlap_chars``, starting at a sentence or
word boundary; a section's last chunk shorter than ``min_chars`` reaches back into the one
before it. Every chunk is an exact slice of ``document.text``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from shipyard.knowledge.types import Chunk, ParsedDocument

_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
_CLOSERS = "\"')]\u201d\u2019\u00bb"  # may follow the full stop: quotes, brackets
# Anchored at the start of a punctuation run and possessive, so "....." repeated a million
# times is scanned once instead of once per position.
_SENTENCE_END = re.compile(r"(?<![.!?])[.!?]++[\"')\]\u201d\u2019\u00bb]*+(?=\s)")
_WORD = re.compile(r"\S+")

Span = tuple[int, int]


@dataclass(frozen=True)
class ChunkingOptions:
    max_chars: int = 1200
    overlap_chars: int = 150
    min_chars: int = (
        200  # merge smaller trailing pieces into the previous chunk of the same section
    )

    def __post_init__(self) -> None:
        if self.max_chars < 1:
            raise ValueError("max_chars must be at least 1")
        if self.overlap_chars < 0 or self.min_chars < 0:
            raise ValueError("overlap_chars and min_chars must not be negative")


def chunk_document(
    document: ParsedDocument, options: ChunkingOptions = ChunkingOptions()
) -> list[Chunk]:
    text = document.text
    chunks: list[Chunk] = []
    for heading, region in _regions(document):
        for start, end in _Region(text, region, options).chunks():
            chunks.append(
                Chunk(
                    index=len(chunks), text=text[start:end], start=start, end=end, heading=heading
                )
            )
    return chunks


def _regions(document: ParsedDocument) -> Iterator[tuple[str | None, Span]]:
    """The sections in text order, clipped so they do not overlap, with any text that no
    section claims (including a document without sections) as heading-less regions."""
    size = len(document.text)
    position = 0
    for section in sorted(document.sections, key=lambda s: (s.start, s.end)):
        start = min(max(section.start, position), size)
        end = min(max(section.end, start), size)
        if start > position:
            yield None, (position, start)
        if end > start:
            yield section.heading, (start, end)
        position = max(position, end)
    if position < size:
        yield None, (position, size)


class _Region:
    """Chunking of one section: ``text[start:end]``."""

    def __init__(self, text: str, region: Span, options: ChunkingOptions) -> None:
        self.text = text
        self.start, self.end = region
        self.options = options

    def chunks(self) -> list[Span]:
        pieces = list(self._pieces())
        limit = self.options.max_chars
        chunks: list[Span] = []
        i = 0
        while i < len(pieces):
            start = pieces[i][0]
            if chunks:
                start = self._overlap_start(chunks[-1], pieces[i])
            end = pieces[i][1]
            i += 1
            while i < len(pieces) and pieces[i][1] - start <= limit:
                end = pieces[i][1]
                i += 1
            chunks.append((start, end))
        return self._absorb_short_tail(chunks)

    # -- pieces: the smallest units a chunk is packed from, each at most max_chars ------------

    def _pieces(self) -> Iterator[Span]:
        limit = self.options.max_chars
        for paragraph in self._split(_PARAGRAPH_BREAK, self.start, self.end):
            if paragraph[1] - paragraph[0] <= limit:
                yield paragraph
                continue
            for sentence in self._sentences(paragraph):
                if sentence[1] - sentence[0] <= limit:
                    yield sentence
                else:
                    yield from self._words(sentence)

    def _split(self, separator: re.Pattern[str], start: int, end: int) -> Iterator[Span]:
        position = start
        for match in separator.finditer(self.text, start, end):
            yield from self._trimmed(position, match.start())
            position = match.end()
        yield from self._trimmed(position, end)

    def _trimmed(self, start: int, end: int) -> Iterator[Span]:
        text = self.text
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if end > start:
            yield start, end

    def _sentences(self, span: Span) -> Iterator[Span]:
        position = span[0]
        for match in _SENTENCE_END.finditer(self.text, span[0], span[1]):
            yield from self._trimmed(position, match.end())
            position = match.end()
        yield from self._trimmed(position, span[1])

    def _words(self, span: Span) -> Iterator[Span]:
        """Single words (the packer joins them again); an over-long word is cut into
        max_chars slices."""
        limit = self.options.max_chars
        for match in _WORD.finditer(self.text, span[0], span[1]):
            start, end = match.span()
            while end - start > limit:
                yield start, start + limit
                start += limit
            yield start, end

    # -- boundaries -----------------------------------------------------------------------

    def _is_word_start(self, position: int) -> bool:
        text = self.text
        return not text[position].isspace() and (
            position == self.start or text[position - 1].isspace()
        )

    def _is_sentence_start(self, position: int) -> bool:
        """A word start after sentence-final punctuation or a blank line (or the section start)."""
        text = self.text
        k = position - 1
        newlines = 0
        while k >= self.start and text[k].isspace():
            newlines += text[k] == "\n"
            k -= 1
        if k < self.start or newlines >= 2:
            return True
        while k > self.start and text[k] in _CLOSERS:
            k -= 1
        return text[k] in ".!?"

    def _overlap_start(self, previous: Span, following: Span) -> int:
        """Where the chunk that starts with piece ``following`` begins so that it repeats the
        end of ``previous``: the earliest sentence start in the previous chunk's last
        overlap_chars, else the earliest word start there, as long as the chunk still fits."""
        lowest = max(previous[0] + 1, previous[1] - self.options.overlap_chars)
        lowest = max(lowest, following[1] - self.options.max_chars)
        word_start: int | None = None
        for position in range(lowest, previous[1]):
            if self._is_word_start(position):
                if self._is_sentence_start(position):
                    return position
                if word_start is None:
                    word_start = position
        return word_start if word_start is not None else following[0]

    def _absorb_short_tail(self, chunks: list[Span]) -> list[Span]:
        """Fold a last chunk under min_chars into the one before it.

        Greedy packing already filled the previous chunk, so the union would exceed
        max_chars; instead the tail reaches back into the previous chunk (from a word start)
        until it is min_chars long, or as far as max_chars allows.
        """
        if len(chunks) < 2 or chunks[-1][1] - chunks[-1][0] >= self.options.min_chars:
            return chunks
        (prev_start, _), (tail_start, tail_end) = chunks[-2], chunks[-1]
        lowest = max(prev_start + 1, tail_end - self.options.max_chars)
        upper = min(tail_start - 1, tail_end - self.options.min_chars)
        # Latest word start giving min_chars; failing that, the earliest max_chars allows.
        candidates = [*range(upper, lowest - 1, -1), *range(max(lowest, upper + 1), tail_start)]
        for position in candidates:
            if self._is_word_start(position):
                return [*chunks[:-1], (position, tail_end)]
        return chunks
