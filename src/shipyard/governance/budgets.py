"""Spending budgets for chat-model runs (``SHIPYARD_BUDGETS``).

Before a metered run, what the tenant already spent in the budget's current UTC period is
summed from the runs table, a worst-case estimate of the run is added, and the run is refused
(429, ``budget-exceeded``) when a limit would be passed. The check happens before any provider
is called, so a refused run costs nothing.

Concurrent runs are checked independently (no reservation), so a burst can overshoot a budget
by at most the runs in flight: budgets cap spending, they are not an accounting ledger.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, runtime_checkable

from sqlalchemy.orm import Session

from shipyard.errors import BudgetExceeded
from shipyard.observability.metrics import Metrics
from shipyard.settings import BudgetSettings
from shipyard.storage.db import SessionFactory
from shipyard.storage.usage import usage_since

CHARS_PER_TOKEN = 4  # a rough, tokenizer-free estimate that errs on neither side much


@dataclass(frozen=True)
class UsageEstimate:
    """The most a run may use: its prompt tokens (estimated) plus every token it may generate."""

    tokens: int
    cost: float | None
    """None when no price is configured for the route (cost limits then see only the past)."""


@runtime_checkable
class Metered(Protocol):
    """A task runner whose runs cost money (chat models); budgets apply to it."""

    def estimate(self, inputs: Mapping[str, Any]) -> UsageEstimate: ...


@dataclass(frozen=True)
class Spent:
    cost: float
    tokens: int


def period_bounds(period: str, now: datetime) -> tuple[datetime, datetime]:
    """Start and end (exclusive) of the UTC day or month containing ``now``."""
    now = now.astimezone(UTC)
    if period == "day":
        start = now.replace(hour=0, minute=0, second=0, microsecond=0)
        return start, start + timedelta(days=1)
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    following = (start + timedelta(days=32)).replace(day=1)
    return start, following


def spent_since(session: Session, tenant_id: str, task: str | None, since: datetime) -> Spent:
    """Cost and tokens of a tenant's runs (of one task, or all when ``task`` is None) since
    ``since``, from the daily totals written with each run (at most 31 rows per task)."""
    cost, tokens = usage_since(session, tenant_id, task, since)
    return Spent(cost, tokens)


def _matches(budget: BudgetSettings, tenant_slug: str, task: str) -> bool:
    return budget.tenant in ("*", tenant_slug) and budget.task in ("*", task)


def _describe(budget: BudgetSettings, tenant_slug: str, limit: str) -> str:
    tenant = tenant_slug if budget.tenant == "*" else budget.tenant
    return f"budget tenant={tenant} task={budget.task} period={budget.period} {limit}"


class BudgetGuard:
    def __init__(
        self,
        budgets: Sequence[BudgetSettings],
        sessions: SessionFactory,
        metrics: Metrics,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._budgets = list(budgets)
        self._sessions = sessions
        self._metrics = metrics
        self._now = now

    def applicable(self, tenant_slug: str, task: str) -> list[BudgetSettings]:
        return [budget for budget in self._budgets if _matches(budget, tenant_slug, task)]

    def check(self, tenant_id: str, tenant_slug: str, task: str, estimate: UsageEstimate) -> None:
        """Raise :class:`BudgetExceeded` when any matching budget would be passed."""
        budgets = self.applicable(tenant_slug, task)
        if not budgets:
            return
        now = self._now()
        with self._sessions() as session:
            for budget in budgets:
                start, end = period_bounds(budget.period, now)
                spent = spent_since(session, tenant_id, None if budget.task == "*" else task, start)
                self._observe(budget, tenant_slug, spent)
                problem = _over(budget, spent, estimate)
                if problem is not None:
                    retry_after = max(1, int((end - now).total_seconds()) + 1)
                    raise BudgetExceeded(
                        _describe(budget, tenant_slug, problem), retry_after=retry_after
                    )

    def _observe(self, budget: BudgetSettings, tenant_slug: str, spent: Spent) -> None:
        labels = (tenant_slug, budget.task, budget.period)
        if budget.max_cost is not None:
            left = max(0.0, budget.max_cost - spent.cost)
            self._metrics.budget_remaining.labels(*labels, "cost").set(left)
        if budget.max_tokens is not None:
            left_tokens = max(0, budget.max_tokens - spent.tokens)
            self._metrics.budget_remaining.labels(*labels, "tokens").set(left_tokens)


def _over(budget: BudgetSettings, spent: Spent, estimate: UsageEstimate) -> str | None:
    """Why the run would pass the budget's limits, or None."""
    if budget.max_cost is not None and estimate.cost is None:
        # Fail closed: an unpriced model must not look free to a cost budget.
        return (
            f"max_cost={budget.max_cost:.2f} cannot be checked: the task's model route has "
            "no price configured (set prices in SHIPYARD_PROVIDERS)"
        )
    if budget.max_cost is not None:
        worst = spent.cost + (estimate.cost or 0.0)
        if worst > budget.max_cost:
            return (
                f"max_cost={budget.max_cost:.2f} would be exceeded: spent {spent.cost:.2f}, "
                f"this run may cost up to {estimate.cost or 0.0:.4f}"
            )
    if budget.max_tokens is not None and spent.tokens + estimate.tokens > budget.max_tokens:
        return (
            f"max_tokens={budget.max_tokens} would be exceeded: spent {spent.tokens} tokens, "
            f"this run may use up to {estimate.tokens}"
        )
    return None
