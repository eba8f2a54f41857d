"""Sentence splitting that keeps exact character offsets, for quoting sentences verbatim.

A regex finds candidate ends (``.``, ``!``, ``?``, optionally followed by closing quotes or
brackets, then whitespace); rules then reject the ones that are not sentence ends:

- the next word starts with a lower-case letter ("e.g. apples", "approx. five");
- the word before is a title or Latin abbreviation that is never sentence-final ("Mr.", "Dr.",
  "e.g.", "i.e.", "vs.", "No. 5");
- the word before is an initial or dotted acronym ("John F. Kennedy", "the U.S. Army") or an
  abbreviation that often ends sentences ("Inc.", "etc.", "Jr."), unless the next word is a
  typical sentence opener ("... in the U.S. The war ...").

Decimals ("3.5") and dotted names ("example.com") never match, as no whitespace follows the dot.
Line breaks end a sentence unless they look like a soft wrap (no end punctuation before, a
lower-case letter after), so headings and list items become sentences of their own.
"""

from __future__ import annotations

import re

__all__ = ["MAX_SENTENCE_CHARS", "split_sentences"]

MAX_SENTENCE_CHARS = 600
"""Longer runs without an end mark (tables, lists flattened to one line) are cut at a space:
a citation should be a readable quote, not a whole page."""

_END = re.compile(r"[.!?\u2026]+[\"'\u201d\u2019)\]]*(?=\s)")
_BREAK = re.compile(r"[ \t]*\n\s*")
_NEXT_WORD = re.compile(r"\s*[\"'\u201c\u2018(\[]*([^\s\"'\u201c\u2018(\[]*)")
_ACRONYM = re.compile(r"(?:[A-Za-z]\.)+[A-Za-z]?|[A-Z]")

# Never sentence-final in practice: splitting after them would cut a sentence in two.
_ALWAYS_ABBREVIATIONS = frozenset(
    """
    mr mrs ms dr prof st mt ft gen col lt sgt capt rev hon gov sen rep pres e.g i.e cf vs viz
    approx fig figs eq ch sec vol pp jan feb mar apr jun jul aug sep sept oct nov dec
    """.split()  # noqa: SIM905 - a word list reads better as text
)
# Abbreviations that also end sentences: split only before a typical sentence opener.
_SOMETIMES_ABBREVIATIONS = frozenset(
    ("etc", "inc", "ltd", "co", "corp", "jr", "sr", "al", "bros", "dept", "est", "ca", "ph.d")
)
_OPENERS = frozenset(
    """
    the a an in on at it its he she they we i this that these those there his her their our
    but however after before during when while although since as by for from with if
    many most some several one two three also then thus yet
    """.split()  # noqa: SIM905
)


def _is_boundary(text: str, mark_start: int, match_end: int) -> bool:
    """Whether the end mark starting at ``mark_start`` (its match ending at ``match_end``)
    really ends a sentence."""
    following = _NEXT_WORD.match(text, match_end)
    next_word = following.group(1) if following else ""
    if not next_word:
        return True
    if next_word[0].islower():
        return False
    if text[mark_start:match_end].rstrip("\"'\u201d\u2019)]") != ".":
        return True  # "?", "!", "..." are not abbreviation dots
    word_start = mark_start
    while word_start > 0 and not text[word_start - 1].isspace():
        word_start -= 1
    word = text[word_start:mark_start].lstrip("\"'\u201c\u2018([")
    lowered = word.lower()
    if lowered in _ALWAYS_ABBREVIATIONS:
        return False
    if lowered == "no":  # "No. 5" is a number; "He said no. Then ..." is a sentence end
        return not next_word[0].isdigit()
    if lowered in _SOMETIMES_ABBREVIATIONS or _ACRONYM.fullmatch(word):
        return next_word.lower().strip(",;:") in _OPENERS
    return True


def _blocks(text: str) -> list[tuple[int, int]]:
    """Split at line breaks, except soft wraps inside a sentence."""
    spans: list[tuple[int, int]] = []
    start = 0
    for match in _BREAK.finditer(text):
        before = text[: match.start()].rstrip()
        after = text[match.end() : match.end() + 1]
        blank_line = match.group().count("\n") > 1
        soft_wrap = bool(before) and before[-1] not in ".!?:;" and after.islower()
        if blank_line or not soft_wrap:
            spans.append((start, match.start()))
            start = match.end()
    spans.append((start, len(text)))
    return spans


def _cut_long(text: str, start: int, end: int, limit: int) -> list[tuple[int, int]]:
    pieces: list[tuple[int, int]] = []
    while end - start > limit:
        cut = text.rfind(" ", start + limit // 2, start + limit)
        cut = cut if cut > start else start + limit
        pieces.append((start, cut))
        start = cut
        while start < end and text[start].isspace():
            start += 1
    pieces.append((start, end))
    return pieces


def _trimmed(text: str, start: int, end: int) -> tuple[int, int] | None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    # A span with no letter or digit ("---", "*") is layout, not a sentence.
    if not any(char.isalnum() for char in text[start:end]):
        return None
    return start, end


def split_sentences(text: str, max_chars: int = MAX_SENTENCE_CHARS) -> list[tuple[int, int]]:
    """``(start, end)`` offsets of each sentence of ``text``, in order, without surrounding
    whitespace: ``text[start:end]`` is the sentence exactly as written."""
    if max_chars < 2:
        raise ValueError("max_chars must be >= 2")
    spans: list[tuple[int, int]] = []
    for block_start, block_end in _blocks(text):
        start = block_start
        for match in _END.finditer(text, block_start, block_end):
            if _is_boundary(text, match.start(), match.end()):
                spans.append((start, match.end()))
                start = match.end()
        spans.append((start, block_end))
    out: list[tuple[int, int]] = []
    for start, end in spans:
        trimmed = _trimmed(text, start, end)
        if trimmed is not None:
            out.extend(_cut_long(text, *trimmed, max_chars))
    return out
