"""Tokens, features and BIO tags for the CRF span tagger (see span_tagger.py).

Tokens keep their character offsets, so a predicted span is always a verbatim slice of the
input. Clock times such as ``19:30`` or ``10:45AM`` stay one token: split up, the CRF has to
learn where such a value ends, and on Restaurants-8K the time F1 was 0.85 instead of 0.93.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

OUTSIDE = "O"


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_TOKEN = re.compile(r"\d{1,2}(?:[:.]\d{2})+(?:[ap]m\b)?|\w+|[^\w\s]", re.IGNORECASE)
_CLOCK = re.compile(r"\d{1,2}(?:[:.]\d{2})?(?:am|pm)?")
_TIME_WORDS = frozenset({"am", "pm", "clock", "hour", "hours", "minutes"})
_ORDINAL = re.compile(r"\d{1,2}(?:st|nd|rd|th)")
_NUMBER_WORDS = _words(
    "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen twenty thirty forty fifty couple dozen"
)
_ORDINAL_WORDS = _words(
    "first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth "
    "thirteenth fourteenth fifteenth sixteenth seventeenth eighteenth nineteenth twentieth "
    "thirtieth"
)
_MONTHS = _words(
    "january february march april may june july august september october november december "
    "jan feb mar apr jun jul aug sep sept oct nov dec"
)
_DAYS = _words(
    "monday tuesday wednesday thursday friday saturday sunday mon tue tues wed thu thur thurs "
    "fri sat sun today tomorrow tonight weekend"
)
_DAYTIME = _words("noon midnight morning afternoon evening night lunch dinner")


@dataclass(frozen=True)
class Token:
    text: str
    start: int
    end: int  # exclusive


@dataclass(frozen=True)
class Span:
    slot: str
    start: int
    end: int  # exclusive


def tokenize(text: str) -> list[Token]:
    return [Token(m.group(), m.start(), m.end()) for m in _TOKEN.finditer(text)]


def _shape(word: str) -> str:
    """``Xxxxx`` -> ``Xx``, ``12:30`` -> ``d:d``: the character classes, runs collapsed."""
    shape: list[str] = []
    for char in word:
        c = "X" if char.isupper() else "x" if char.isalpha() else "d" if char.isdigit() else char
        if not shape or shape[-1] != c:
            shape.append(c)
    return "".join(shape)


def _word_classes(word: str) -> list[str]:
    """Dictionary and pattern classes of one lower-cased token (shared with its neighbours)."""
    classes = []
    if word.isdigit():
        classes.append("digit" if len(word) <= 2 else "number")
    if word in _NUMBER_WORDS:
        classes.append("numword")
    if word in _ORDINAL_WORDS or _ORDINAL.fullmatch(word):
        classes.append("ordinal")
    if word in _MONTHS:
        classes.append("month")
    if word in _DAYS:
        classes.append("day")
    if word in _DAYTIME:
        classes.append("daytime")
    if word in _TIME_WORDS:
        classes.append("timeword")
    if _CLOCK.fullmatch(word) and not word.isdigit():
        classes.append("clock")
    return classes


def _own_features(token: Token) -> list[str]:
    word = token.text
    lower = word.lower()
    features = [f"w={lower}", f"shape={_shape(word)}", f"len={min(len(word), 8)}"]
    features += [f"p{n}={lower[:n]}" for n in (1, 2, 3) if len(lower) > n]
    features += [f"s{n}={lower[-n:]}" for n in (1, 2, 3) if len(lower) > n]
    if word.istitle():
        features.append("title")
    if word.isupper() and word.isalpha():
        features.append("upper")
    features += [f"c={c}" for c in _word_classes(lower)]
    return features


def token_features(tokens: Sequence[Token]) -> list[list[str]]:
    """One feature list per token: its own features, the words and classes of the tokens up to
    two either side, a bigram with each direct neighbour and where it sits in the text."""
    lowered = [t.text.lower() for t in tokens]
    classes = [_word_classes(word) for word in lowered]
    shapes = [_shape(t.text) for t in tokens]
    rows = []
    for i, token in enumerate(tokens):
        features = ["bias", *_own_features(token)]
        for offset in (-2, -1, 1, 2):
            j = i + offset
            if not 0 <= j < len(tokens):
                features.append(f"{offset}:edge")
                continue
            features.append(f"{offset}:w={lowered[j]}")
            features += [f"{offset}:c={c}" for c in classes[j]]
            if abs(offset) == 1:
                features.append(f"{offset}:shape={shapes[j]}")
        if i > 0:
            features.append(f"bi-1={lowered[i - 1]}|{lowered[i]}")
        if i + 1 < len(tokens):
            features.append(f"bi+1={lowered[i]}|{lowered[i + 1]}")
        features.append(f"pos={min(i, 3)}")
        features.append(f"rpos={min(len(tokens) - 1 - i, 3)}")
        features.append(f"ntok={min(len(tokens), 6)}")
        rows.append(features)
    return rows


def bio_tags(tokens: Sequence[Token], spans: Sequence[Span]) -> tuple[list[str], int]:
    """BIO tags for ``spans`` and how many spans were dropped because they overlap a longer
    one: one tag per token cannot mark two slots (``8:00 tonight`` is a time, and ``tonight``
    inside it a date, in Restaurants-8K). A token belongs to a span if they overlap at all."""
    tags = [OUTSIDE] * len(tokens)
    dropped = 0
    # Longest first, then by position: the kept span is the most informative one.
    for span in sorted(spans, key=lambda s: (-(s.end - s.start), s.start)):
        inside = [i for i, t in enumerate(tokens) if t.start < span.end and span.start < t.end]
        if not inside or any(tags[i] != OUTSIDE for i in inside):
            dropped += 1
            continue
        tags[inside[0]] = f"B-{span.slot}"
        for i in inside[1:]:
            tags[i] = f"I-{span.slot}"
    return tags, dropped


def decode(tokens: Sequence[Token], tags: Sequence[str]) -> list[Span]:
    """Spans from BIO tags, in text order; an ``I-`` without its ``B-`` starts a span (the
    CRF rarely emits one, and dropping it would lose a value the model did find)."""
    spans: list[Span] = []
    current: Span | None = None
    for token, tag in zip(tokens, tags, strict=True):
        prefix, _, slot = tag.partition("-")
        if prefix == "I" and current is not None and current.slot == slot:
            current = Span(slot, current.start, token.end)
            continue
        if current is not None:
            spans.append(current)
        current = Span(slot, token.start, token.end) if prefix in ("B", "I") else None
    if current is not None:
        spans.append(current)
    return spans
