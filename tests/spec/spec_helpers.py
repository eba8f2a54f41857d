"""Shared test data for the spec tests (imported by conftest and tests alike)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from shipyard.errors import FieldProblem

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_PROJECT = REPO_ROOT / "examples" / "support-desk"

VALID_SPEC = """\
name: ticket-triage
version: 1
description: Route support tickets.
owner: support@example.com
kind: classify
input:
  text:
    type: string
    min_length: 1
    max_length: 1000
output:
  label:
    type: enum
    values_from: data/categories.json
  confidence:
    type: number
    minimum: 0
    maximum: 1
model:
  provider: local
  model: minilm-tfidf-logreg
training:
  path: data/train.csv
  input:
    text: text
  label: category
policy:
  review_below: 0.5
evaluation:
  dataset:
    path: data/dev.csv
    input:
      text: text
    expected:
      label: category
  gates:
    accuracy: ">= 0.9"
    macro_f1: ">= 0.8"
hypothesis:
  outcome: Tickets reach the right queue without manual triage.
  kpis:
    - name: auto_routed_share
      description: Share routed without review.
      target: ">= 0.85"
"""

ProblemsOf = Callable[[str], list[FieldProblem]]

ROWS = "text,category\nmy card never arrived,card_arrival\nI was charged twice,billing\n"


def line_with(text: str, needle: str) -> int:
    """1-based number of the first line of ``text`` containing ``needle``."""
    for number, line in enumerate(text.splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in text")
