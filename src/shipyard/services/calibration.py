"""Pick a review threshold from out-of-fold predictions on the training data, never from
the evaluation data (which would make the evaluation optimistic)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from shipyard.errors import InvalidInput, ShipyardError
from shipyard.services.runtime import TaskRuntime
from shipyard.spec import Project
from shipyard.spec.edit import set_policy_value


@runtime_checkable
class HasOutOfFold(Protocol):
    def out_of_fold(self) -> tuple[list[float], list[bool]]: ...


@dataclass
class TargetUnreachable(ShipyardError):
    status: int = 422
    slug: str = "target-unreachable"
    title: str = "Target accuracy unreachable"


@dataclass(frozen=True)
class Calibration:
    threshold: float
    coverage: float
    accuracy: float
    examples: int


def choose_threshold(
    confidences: list[float], correct: list[bool], target_accuracy: float
) -> Calibration:
    """The lowest threshold whose answered cases reach the target: the most coverage."""
    if not confidences:
        raise InvalidInput("no out-of-fold predictions to calibrate on")
    pairs = sorted(zip(confidences, correct, strict=True), key=lambda p: p[0], reverse=True)
    best: Calibration | None = None
    best_accuracy = 0.0
    hits = 0
    for answered, (confidence, ok) in enumerate(pairs, start=1):
        hits += ok
        next_lower = pairs[answered][0] if answered < len(pairs) else None
        # Only cut between distinct confidences: equal scores are answered together.
        if next_lower == confidence:
            continue
        accuracy = hits / answered
        best_accuracy = max(best_accuracy, accuracy)
        if accuracy >= target_accuracy:
            threshold = _short_threshold(confidence, next_lower)
            best = Calibration(threshold, answered / len(pairs), accuracy, len(pairs))
    if best is None:
        raise TargetUnreachable(
            f"no threshold reaches accuracy {target_accuracy:.3f} on the training data's "
            f"out-of-fold predictions (best {best_accuracy:.3f})"
        )
    return best


def _short_threshold(confidence: float, next_lower: float | None) -> float:
    """The shortest decimal that still answers ``confidence`` and not ``next_lower``: a
    threshold readable in the spec that selects exactly the intended cases."""
    for digits in range(2, 18):
        scale = 10.0**digits
        candidate = math.floor(confidence * scale) / scale
        if next_lower is None or candidate > next_lower:
            return candidate
    return confidence


class CalibrationService:
    def __init__(self, project: Project, runtime: TaskRuntime) -> None:
        self._project = project
        self._runtime = runtime

    def calibrate(self, task: str, target_accuracy: float, *, write: bool = True) -> Calibration:
        if not 0 < target_accuracy <= 1:
            raise InvalidInput("--target-accuracy must be in (0, 1]")
        runner = self._runtime.runner(task)
        if not isinstance(runner, HasOutOfFold):
            raise InvalidInput(f"task {task}: its kind has no out-of-fold predictions")
        confidences, correct = runner.out_of_fold()
        result = choose_threshold(confidences, correct, target_accuracy)
        if write:
            set_policy_value(self._project.sources[task], "review_below", f"{result.threshold}")
        return result
