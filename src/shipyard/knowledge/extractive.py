"""Offline extractive answering for the ``answer`` task kind: quote the retrieved sentences that
best answer a question, with citations, or abstain.

Retrieved text is data, never instructions. Nothing in a sentence is interpreted: sentences are
only scored, and the answer is made of verbatim quotes of them, each cited with its offsets in
the source document. A passage saying "ignore previous instructions" can at most be quoted.

Each candidate sentence gets a blend of three signals, all in [0, 1]:

- dense: cosine between question and sentence embeddings (clipped at 0);
- lexical: the IDF-weighted share of the question's content words that the sentence contains,
  with IDF over the candidate sentences, so words common to every passage count little;
- prior: 1 / (1 + rank) of the hit it came from, a small preference for earlier hits.

The weights, the adjacency margin and the confidence calibration were measured with
``bench/extractive_tuning.py`` on SQuAD dev (see the figures next to the constants).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from shipyard.evaluation.metrics.text import tokens
from shipyard.knowledge.sentences import split_sentences
from shipyard.knowledge.stopwords import STOPWORDS
from shipyard.knowledge.types import Hit

__all__ = [
    "Candidate",
    "Evidence",
    "ExtractiveAnswer",
    "ExtractiveOptions",
    "SentenceEncoder",
    "answer_question",
    "content_terms",
    "score_candidates",
    "support",
]

# Measured with bench/extractive_tuning.py (SQuAD dev, simulated top-5 retrieval, two disjoint
# samples of 600 answerable + 400 unanswerable questions; chosen on one, reported on the other).
# Weight grid on the tune sample, by top-1 sentence recall + ROC AUC (answerable vs not):
#   dense only 0.652 / 0.614, lexical only 0.785 / 0.564, 0.6/0.35/0.05 (chosen) 0.795 / 0.609.
# Held-out with these defaults: top sentence(s) hold a gold answer for 0.765 of answerable
# questions, token F1 0.172 (whole sentences against short SQuAD spans). A margin of 0.05 adds
# the neighbour in 6% of answers: recall 0.755 -> 0.765, F1 0.177 -> 0.172.
DENSE_WEIGHT = 0.6
LEXICAL_WEIGHT = 0.35
RANK_WEIGHT = 0.05
ADJACENT_MARGIN = 0.05
# confidence = logistic(SLOPE * (blended - CENTER)), fitted (tune sample) by logistic regression
# of "the top sentence holds a gold answer" on its blended score: an estimate of that chance
# when about 40% of questions have no answer in the passages.
CALIBRATION_SLOPE = 5.16
CALIBRATION_CENTER = 0.645

_STOPWORDS = STOPWORDS


class SentenceEncoder(Protocol):
    """Anything that embeds texts into L2-normalised rows, e.g. ``MiniLMEmbedder``."""

    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]: ...


@dataclass(frozen=True)
class Evidence:
    """One cited sentence: ``quote`` is the document text between ``start`` and ``end``."""

    hit: Hit  # the chunk it came from
    start: int  # offsets in the document: hit.start + offset within hit.text
    end: int
    quote: str  # == hit.text[start - hit.start : end - hit.start]
    score: float  # blended score of the sentence


@dataclass(frozen=True)
class ExtractiveAnswer:
    """Verbatim cited sentences answering a question, or an abstention (with its confidence)."""

    answer: str  # the chosen sentences in document order, joined by a space; "" when abstaining
    answerable: bool
    confidence: float  # in [0, 1]; compared with ExtractiveOptions.abstain_below
    evidence: tuple[Evidence, ...]  # cited sentences, best first; () when abstaining


@dataclass(frozen=True)
class ExtractiveOptions:
    """How many hits and sentences to use, when to abstain, and how to blend the signals."""

    max_sentences: int = 2  # sentences in an answer
    # Best abstention F1 on the tune sample while answering >= 80% of answerable questions.
    # Held-out: abstention precision 0.50, recall 0.22, 86% of answerable answered. SQuAD 2.0
    # unanswerable questions are adversarial (confidence ROC AUC only 0.58): a reader model,
    # not sentence similarity, is needed to do much better.
    abstain_below: float = 0.325  # confidence under which the answer abstains
    passages: int = 5  # top hits considered
    # Changing the weights shifts the blended scores the calibration was fitted on.
    dense_weight: float = DENSE_WEIGHT
    lexical_weight: float = LEXICAL_WEIGHT
    rank_weight: float = RANK_WEIGHT
    adjacent_margin: float = ADJACENT_MARGIN  # a neighbour within this of the best joins it

    def __post_init__(self) -> None:
        if self.max_sentences < 1:
            raise ValueError("max_sentences must be >= 1")
        if self.passages < 1:
            raise ValueError("passages must be >= 1")
        if not 0.0 <= self.abstain_below <= 1.0:
            raise ValueError("abstain_below must be in [0, 1]")
        weights = (self.dense_weight, self.lexical_weight, self.rank_weight)
        if min(weights) < 0 or sum(weights) <= 0:
            raise ValueError("weights must be >= 0 and not all 0")
        if self.adjacent_margin < 0:
            raise ValueError("adjacent_margin must be >= 0")


@dataclass(frozen=True)
class Candidate:
    """One sentence of one hit with its three signals (exposed for tuning and diagnostics)."""

    hit: Hit
    rank: int  # position of the hit among those considered, 0 = first
    position: int  # index of the sentence within the hit
    start: int  # offsets in hit.text
    end: int
    dense: float
    lexical: float
    prior: float

    def blended(self, options: ExtractiveOptions) -> float:
        total = options.dense_weight + options.lexical_weight + options.rank_weight
        score = (
            options.dense_weight * self.dense
            + options.lexical_weight * self.lexical
            + options.rank_weight * self.prior
        )
        return score / total


def _stem(word: str) -> str:
    # Just enough to match "ruled"/"rules"/"ruling" with "rule"; a real stemmer is not needed
    # for a signal that is only one part of the blend.
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    for suffix in ("ing", "ed", "es", "s"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix) and not word.endswith("ss"):
            word = word[: -len(suffix)]
            break
    return word[:-1] if len(word) > 3 and word.endswith("e") else word


def content_terms(text: str) -> set[str]:
    """Stemmed content words of ``text`` (SQuAD normalisation, stopwords removed)."""
    return {_stem(token) for token in tokens(text) if token not in _STOPWORDS}


def score_candidates(
    question: str, hits: Sequence[Hit], encoder: SentenceEncoder, passages: int = 5
) -> list[Candidate]:
    """Every sentence of the first ``passages`` hits with its dense, lexical and prior signals.

    The question and all sentences are embedded in a single ``encode`` call.
    """
    spans = [
        (rank, position, hit, start, end)
        for rank, hit in enumerate(hits[:passages])
        for position, (start, end) in enumerate(split_sentences(hit.text))
    ]
    if not spans or not question.strip():
        return []
    texts = [hit.text[start:end] for _, _, hit, start, end in spans]
    vectors = np.asarray(encoder.encode([question, *texts]), dtype=np.float32)
    if vectors.shape[0] != len(texts) + 1:
        raise ValueError(f"encoder returned {vectors.shape[0]} rows for {len(texts) + 1} texts")
    dense = np.clip(vectors[1:] @ vectors[0], 0.0, 1.0)

    asked = content_terms(question)
    sentence_terms = [content_terms(text) for text in texts]
    document_frequency = Counter(term for terms in sentence_terms for term in terms & asked)
    count = len(texts)
    # Smoothed IDF: a question word found in no candidate weighs most, so missing it lowers
    # every sentence's overlap (a useful sign that the passages do not hold the answer).
    idf = {term: math.log((count + 1) / (document_frequency[term] + 0.5)) for term in asked}
    total = sum(idf.values())

    candidates = []
    for (rank, position, hit, start, end), terms, cosine in zip(
        spans, sentence_terms, dense, strict=True
    ):
        matched = sum(idf[term] for term in terms & asked)
        candidates.append(
            Candidate(
                hit=hit,
                rank=rank,
                position=position,
                start=start,
                end=end,
                dense=float(cosine),
                lexical=matched / total if total > 0 else 0.0,
                prior=1.0 / (1 + rank),
            )
        )
    return candidates


def support(blended: float) -> float:
    """Calibrated confidence in [0, 1] that a sentence with this blended score answers."""
    return 1.0 / (1.0 + math.exp(-CALIBRATION_SLOPE * (blended - CALIBRATION_CENTER)))


def _select(
    candidates: Sequence[Candidate], scores: Sequence[float], options: ExtractiveOptions
) -> list[int]:
    """Indexes of the chosen sentences, best first: the best sentence, grown one neighbour at
    a time (same hit, adjacent) while the neighbour scores within the margin of the best."""
    best = max(range(len(candidates)), key=lambda i: scores[i])
    where = {(c.rank, c.position): i for i, c in enumerate(candidates)}
    rank, low, high = candidates[best].rank, candidates[best].position, candidates[best].position
    chosen = [best]
    while len(chosen) < options.max_sentences:
        neighbours = [where[key] for key in ((rank, low - 1), (rank, high + 1)) if key in where]
        if not neighbours:
            break
        nearest = max(neighbours, key=lambda i: scores[i])
        if scores[nearest] < scores[best] - options.adjacent_margin:
            break
        chosen.append(nearest)
        low = min(low, candidates[nearest].position)
        high = max(high, candidates[nearest].position)
    return chosen


def answer_question(
    question: str,
    hits: Sequence[Hit],
    encoder: SentenceEncoder,
    options: ExtractiveOptions = ExtractiveOptions(),
) -> ExtractiveAnswer:
    """Answer ``question`` with verbatim sentences of ``hits`` (ordered best first), or abstain.

    The answer abstains (``answer == ""``, no evidence) when its confidence is below
    ``options.abstain_below``; the confidence is reported either way.
    """
    candidates = score_candidates(question, hits, encoder, options.passages)
    if not candidates:
        return ExtractiveAnswer(answer="", answerable=False, confidence=0.0, evidence=())
    scores = [candidate.blended(options) for candidate in candidates]
    # Neighbours join in adjacency order; citations are listed by score (the best is first).
    chosen = sorted(_select(candidates, scores, options), key=lambda i: -scores[i])
    confidence = support(scores[chosen[0]])
    if confidence < options.abstain_below:
        return ExtractiveAnswer(answer="", answerable=False, confidence=confidence, evidence=())
    evidence = tuple(
        Evidence(
            hit=candidates[i].hit,
            start=candidates[i].hit.start + candidates[i].start,
            end=candidates[i].hit.start + candidates[i].end,
            quote=candidates[i].hit.text[candidates[i].start : candidates[i].end],
            score=scores[i],
        )
        for i in chosen
    )
    in_order = sorted(evidence, key=lambda e: e.start)
    return ExtractiveAnswer(
        answer=" ".join(e.quote for e in in_order),
        answerable=True,
        confidence=confidence,
        evidence=evidence,
    )
