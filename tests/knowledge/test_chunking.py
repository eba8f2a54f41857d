"""Structure-aware chunking: exact slices, section boundaries, overlap and size limits."""

from __future__ import annotations

import re
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shipyard.knowledge.chunking import ChunkingOptions, chunk_document
from shipyard.knowledge.parsing import parse_document
from shipyard.knowledge.types import Chunk, DocumentRejected, ParsedDocument, Section


def document(text: str, sections: tuple[Section, ...] | None = None) -> ParsedDocument:
    if sections is None:
        sections = (Section(None, 0, len(text)),)
    return ParsedDocument(title="t", text=text, media_type="text/plain", sections=sections)


def assert_invariants(doc: ParsedDocument, chunks: list[Chunk], options: ChunkingOptions) -> None:
    assert [c.index for c in chunks] == list(range(len(chunks)))
    starts = [c.start for c in chunks]
    assert starts == sorted(set(starts))
    covered = bytearray(len(doc.text))
    for chunk in chunks:
        assert chunk.text == doc.text[chunk.start : chunk.end]
        assert chunk.text
        assert chunk.text == chunk.text.strip()
        assert len(chunk.text) <= options.max_chars
        covered[chunk.start : chunk.end] = b"\x01" * (chunk.end - chunk.start)
        section = next(
            (s for s in doc.sections if s.start <= chunk.start and chunk.end <= s.end), None
        )
        if section is not None:
            assert chunk.heading == section.heading
    for position, character in enumerate(doc.text):
        if not character.isspace():
            assert covered[position], f"character {position} ({character!r}) not in any chunk"


def assert_no_chunk_crosses_a_section(doc: ParsedDocument, chunks: list[Chunk]) -> None:
    for chunk in chunks:
        for section in doc.sections:
            inside = section.start <= chunk.start and chunk.end <= section.end
            apart = chunk.end <= section.start or chunk.start >= section.end
            assert inside or apart


# -- properties --------------------------------------------------------------------------------

ALPHABET = st.sampled_from(
    [*"abcdefgh ", " ", " ", "\n", "\n\n", ". ", "! ", "? ", "\t", "é", "\u00a0"]
)
WORDS = st.lists(ALPHABET, max_size=600).map("".join)
OPTIONS = st.builds(
    ChunkingOptions,
    max_chars=st.integers(1, 200),
    overlap_chars=st.integers(0, 120),
    min_chars=st.integers(0, 150),
)


@st.composite
def documents(draw: st.DrawFn) -> ParsedDocument:
    text = draw(WORDS)
    cuts = sorted(set(draw(st.lists(st.integers(0, len(text)), max_size=6))))
    bounds = [0, *cuts, len(text)]
    sections = tuple(
        Section(draw(st.none() | st.sampled_from(["Intro", "Rules", "FAQ"])), a, b)
        for a, b in pairwise(bounds)
        if b > a and draw(st.booleans() | st.just(True))
    )
    return document(text, sections)


@settings(max_examples=200, deadline=None)
@given(documents(), OPTIONS)
def test_chunks_are_exact_ordered_covering_slices(
    doc: ParsedDocument, options: ChunkingOptions
) -> None:
    chunks = chunk_document(doc, options)
    assert_invariants(doc, chunks, options)
    assert_no_chunk_crosses_a_section(doc, chunks)
    assert chunk_document(doc, options) == chunks  # deterministic


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.sampled_from(["# Head", "## Sub", "Plain words here.", "Another one!", "", "x" * 70]),
        max_size=40,
    ),
    OPTIONS,
)
def test_parsed_markdown_chunks_respect_sections(
    lines: list[str], options: ChunkingOptions
) -> None:
    try:
        doc = parse_document("p.md", "\n".join(lines).encode())
    except DocumentRejected:
        return  # empty documents are the parser's business
    chunks = chunk_document(doc, options)
    assert_invariants(doc, chunks, options)
    assert_no_chunk_crosses_a_section(doc, chunks)


# -- examples ----------------------------------------------------------------------------------

SENTENCES = " ".join(f"Sentence number {i} explains one more leave rule." for i in range(40))


def test_headings_are_respected() -> None:
    doc = parse_document(
        "h.md", b"# Vacation\n\n25 days.\n\n# Sick leave\n\nCall in.\n\n## Proof\n\nNote."
    )
    chunks = chunk_document(doc)
    assert [(c.heading, c.text) for c in chunks] == [
        ("Vacation", "Vacation\n\n25 days."),
        ("Sick leave", "Sick leave\n\nCall in."),
        ("Proof", "Proof\n\nNote."),
    ]


def test_short_paragraphs_are_packed_together() -> None:
    doc = document("\n\n".join(f"Paragraph {i} text." for i in range(10)))
    chunks = chunk_document(doc, ChunkingOptions(max_chars=60, overlap_chars=0, min_chars=0))
    assert [c.text.count("Paragraph") for c in chunks] == [3, 3, 3, 1]
    assert all(c.text.startswith("Paragraph") for c in chunks)


def test_consecutive_chunks_overlap_at_sentence_starts() -> None:
    doc = document(SENTENCES)
    options = ChunkingOptions(max_chars=300, overlap_chars=120, min_chars=0)
    chunks = chunk_document(doc, options)
    assert len(chunks) > 5
    for previous, following in pairwise(chunks):
        overlap = previous.end - following.start
        assert 0 < overlap <= options.overlap_chars
        assert following.text.startswith("Sentence number")
    assert_invariants(doc, chunks, options)


def test_overlap_falls_back_to_word_starts() -> None:
    doc = document(" ".join(f"w{i}" for i in range(200)))  # no sentence ends at all
    chunks = chunk_document(doc, ChunkingOptions(max_chars=100, overlap_chars=20, min_chars=0))
    for previous, following in pairwise(chunks):
        assert 0 < previous.end - following.start <= 20
        assert doc.text[following.start - 1] == " "


def test_no_overlap_when_disabled() -> None:
    chunks = chunk_document(
        document(SENTENCES), ChunkingOptions(max_chars=300, overlap_chars=0, min_chars=0)
    )
    assert all(a.end < b.start for a, b in pairwise(chunks))


def test_long_paragraph_is_split_at_sentence_ends() -> None:
    chunks = chunk_document(
        document(SENTENCES), ChunkingOptions(max_chars=200, overlap_chars=0, min_chars=0)
    )
    assert all(c.text.endswith("rule.") for c in chunks)


def test_long_sentence_is_split_between_words() -> None:
    text = " ".join(["lorem"] * 400) + "."
    options = ChunkingOptions(max_chars=100, overlap_chars=12, min_chars=0)
    chunks = chunk_document(document(text), options)
    assert len(chunks) > 20
    for chunk in chunks:
        assert re.fullmatch(r"lorem( lorem)*\.?", chunk.text)
    assert_invariants(document(text), chunks, options)


def test_word_longer_than_max_chars_is_cut() -> None:
    text = "short words then " + "x" * 250 + " and more"
    options = ChunkingOptions(max_chars=100, overlap_chars=10, min_chars=0)
    chunks = chunk_document(document(text), options)
    assert [len(c.text) for c in chunks] == [16, 100, 100, 59]
    assert_invariants(document(text), chunks, options)


def test_short_section_on_its_own_is_kept() -> None:
    text = "Tiny.\n\n" + "word " * 30
    doc = document(text.strip(), (Section("A", 0, 5), Section("B", 7, len(text.strip()))))
    chunks = chunk_document(doc, ChunkingOptions(max_chars=100, overlap_chars=0, min_chars=50))
    assert [(c.heading, len(c.text)) for c in chunks] == [("A", 5), ("B", 99), ("B", 54)]


def test_short_tail_reaches_back_when_merging_would_be_too_long() -> None:
    text = " ".join(f"w{i:02d}" for i in range(30))  # 30 words of 3 chars = 119 chars
    options = ChunkingOptions(max_chars=100, overlap_chars=0, min_chars=40)
    chunks = chunk_document(document(text), options)
    assert len(chunks) == 2
    assert len(chunks[1].text) >= 40
    assert chunks[1].start < chunks[0].end  # reached back into the previous chunk
    assert_invariants(document(text), chunks, options)


def test_text_outside_sections_is_still_chunked() -> None:
    text = "lead in\n\nsection body\n\ntrailing"
    doc = document(text, (Section("S", 9, 21),))
    chunks = chunk_document(doc, ChunkingOptions(min_chars=0))
    assert [(c.heading, c.text) for c in chunks] == [
        (None, "lead in"),
        ("S", "section body"),
        (None, "trailing"),
    ]


def test_empty_and_whitespace_documents_have_no_chunks() -> None:
    assert chunk_document(document("")) == []
    assert chunk_document(document(" \n\n \t")) == []


@pytest.mark.parametrize("kwargs", [{"max_chars": 0}, {"overlap_chars": -1}, {"min_chars": -5}])
def test_invalid_options(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="must"):
        ChunkingOptions(**kwargs)
