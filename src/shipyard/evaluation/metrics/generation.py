"""Generation metrics: reference overlap (ROUGE-L) and schema-valid rate."""

from __future__ import annotations

from collections.abc import Sequence

from shipyard.evaluation.metrics._checks import same_length
from shipyard.evaluation.metrics.text import tokens


def _lcs_length(first: Sequence[str], second: Sequence[str]) -> int:
    # One row of the dynamic-programming table at a time: O(len(second)) memory.
    previous = [0] * (len(second) + 1)
    for token in first:
        current = [0]
        for column, other in enumerate(second, start=1):
            if token == other:
                current.append(previous[column - 1] + 1)
            else:
                current.append(max(previous[column], current[column - 1]))
        previous = current
    return previous[-1]


def rouge_l(reference: str, candidate: str) -> float:
    """ROUGE-L F-measure (beta = 1) over normalised tokens.

    Based on the longest common subsequence, so word order matters but gaps are allowed:
    precision = LCS / candidate tokens, recall = LCS / reference tokens. Both texts empty
    after normalisation -> 1.0; exactly one empty -> 0.0.
    """
    ref, cand = tokens(reference), tokens(candidate)
    if not ref and not cand:
        return 1.0
    common = _lcs_length(ref, cand)
    if common == 0:
        return 0.0
    precision, recall = common / len(cand), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def schema_valid_rate(valids: Sequence[bool]) -> float:
    """Share of generated outputs that validated against the task's output schema."""
    n = same_length("schema_valid_rate", valids=valids)
    return sum(bool(valid) for valid in valids) / n
