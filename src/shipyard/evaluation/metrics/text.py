"""Text normalisation shared by every text-overlap metric (extraction, answer, generation).

It lives in one place so that "exact match" means the same thing for an extracted field, an
answer and a generated text: two strings that differ only in case, punctuation, articles or
spacing are the same answer (SQuAD-style normalisation).
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections import Counter

_ARTICLES = re.compile(r"\b(?:a|an|the)\b")
_ASCII_PUNCTUATION = frozenset(string.punctuation)


def _is_punctuation(char: str) -> bool:
    # ASCII punctuation includes symbols such as "$" and "+" (as in SQuAD); the Unicode
    # categories add punctuation such as curly quotes and dashes from non-ASCII text.
    return char in _ASCII_PUNCTUATION or unicodedata.category(char).startswith("P")


def normalize(text: str | None) -> str:
    """Lower-case, drop punctuation and the articles a/an/the, collapse whitespace.

    ``None`` normalises to ``""``, so a missing value and an empty one are the same.
    """
    if text is None:
        return ""
    lowered = text.lower()
    without_punctuation = "".join(char for char in lowered if not _is_punctuation(char))
    return " ".join(_ARTICLES.sub(" ", without_punctuation).split())


def tokens(text: str | None) -> list[str]:
    """Normalised whitespace tokens of ``text``."""
    return normalize(text).split()


def exact_match(reference: str | None, candidate: str | None) -> float:
    """1.0 when both strings normalise to the same text, else 0.0."""
    return 1.0 if normalize(reference) == normalize(candidate) else 0.0


def overlap(reference: str | None, candidate: str | None) -> tuple[int, int, int]:
    """(common tokens, reference tokens, candidate tokens), counting repeated tokens.

    Exposed so micro averages can pool token counts over many pairs.
    """
    ref, cand = tokens(reference), tokens(candidate)
    common = sum((Counter(ref) & Counter(cand)).values())
    return common, len(ref), len(cand)


def f1_from_counts(common: int, reference: int, candidate: int) -> float:
    """Token F1 from pooled counts; both sides empty is a perfect match (1.0)."""
    if reference == 0 and candidate == 0:
        return 1.0
    if common == 0:
        return 0.0
    precision, recall = common / candidate, common / reference
    return 2 * precision * recall / (precision + recall)


def token_f1(reference: str | None, candidate: str | None) -> float:
    """Harmonic mean of token precision and recall after normalisation.

    Both empty (after normalisation) -> 1.0; exactly one empty -> 0.0.
    """
    return f1_from_counts(*overlap(reference, candidate))
