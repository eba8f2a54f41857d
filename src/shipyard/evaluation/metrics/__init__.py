"""Evaluation metrics per task kind: pure functions from predictions to plain numbers.

Scalar metrics (the names gates refer to) are defined in docs/metrics.md. Empty input raises
ValueError: an evaluation that measured nothing must not pass or fail a gate by accident.
"""

from shipyard.evaluation.metrics.answer import (
    abstention,
    citation_key,
    citation_validity,
    mean_reciprocal_rank,
    recall_at_k,
)
from shipyard.evaluation.metrics.classification import (
    accuracy,
    classify_metrics,
    confused_pairs,
    confusion_matrix,
    coverage_curve,
    expected_calibration_error,
    macro_f1,
    out_of_scope,
    per_class,
    reliability_bins,
    selective,
)
from shipyard.evaluation.metrics.extraction import extract_metrics
from shipyard.evaluation.metrics.generation import rouge_l, schema_valid_rate
from shipyard.evaluation.metrics.text import exact_match, normalize, token_f1

__all__ = [
    "abstention",
    "accuracy",
    "citation_key",
    "citation_validity",
    "classify_metrics",
    "confused_pairs",
    "confusion_matrix",
    "coverage_curve",
    "exact_match",
    "expected_calibration_error",
    "extract_metrics",
    "macro_f1",
    "mean_reciprocal_rank",
    "normalize",
    "out_of_scope",
    "per_class",
    "recall_at_k",
    "reliability_bins",
    "rouge_l",
    "schema_valid_rate",
    "selective",
    "token_f1",
]
