"""Booking what a failed chat-model run may have cost (budgets must see it)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shipyard.errors import InvalidModelOutput
from shipyard.governance.budgets import Metered
from shipyard.storage.tables import Run


def book_worst_case(run: Run, runner: object, data: Mapping[str, Any], error: object) -> None:
    """A metered run that failed after the provider was called may still have been billed:
    book its worst case, so failing (or leaving) runs cannot spend past a budget unseen. An
    invalid structured reply means two billed calls (the reply and its repair)."""
    if not isinstance(runner, Metered) or run.cost is not None or run.prompt_tokens is not None:
        return
    estimate = runner.estimate(data)
    calls = 2 if isinstance(error, InvalidModelOutput) else 1
    run.prompt_tokens, run.completion_tokens = estimate.tokens * calls, 0
    run.cost = estimate.cost * calls if estimate.cost is not None else None
    run.flags = [*run.flags, "usage_estimated"]
