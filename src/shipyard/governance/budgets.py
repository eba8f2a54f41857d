"""Spending budgets for chat-model runs (``SHIPYARD_BUDGETS``).

Before a metered run, what the tenant already spent in the budget's current UTC period (daily
totals written with each run) and what its runs in flight may still spend (their
reservations) are summed, the run's own worst-case estimate is added, and the run is refused
(429, ``budget-exceeded``) when a limit would be passed. The check happens before any provider
is called, so a refused run costs nothing.

An accepted run holds its worst case as a reservation until it is stored, when its real usage
is booked and the reservation dropped in one transaction; checks of one tenant take turns
(a lock on the tenant row), so a burst of concurrent runs cannot pass a budget together. A
reservation whose process died expires after twice the task's generation timeout plus a
minute, giving the budget back.
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
from shipyard.storage import usage
from shipyard.storage.db import SessionFactory
from shipyard.storage.repositories import TenantRepository
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

    def reserve(
        self,
        run_id: str,
        tenant_id: str,
        tenant_slug: str,
        task: str,
        estimate: UsageEstimate,
        hold: timedelta,
    ) -> None:
        """Hold the run's worst case for ``hold`` (or until the run is stored), or raise
        :class:`BudgetExceeded` when any matching budget would be passed (nothing held)."""
        budgets = self.applicable(tenant_slug, task)
        if not budgets:
            return
        now = self._now()
        with self._sessions.begin() as session:
            # One check of the tenant at a time: each sees the holds of those before it.
            TenantRepository(session).lock(tenant_id)
            usage.reserve(
                session, run_id, tenant_id, task, estimate.cost or 0.0, estimate.tokens, now + hold
            )
            usage.drop_expired(session, tenant_id, now)
            for budget in budgets:
                start, end = period_bounds(budget.period, now)
                scope = None if budget.task == "*" else task
                # Holds first, then usage: a run stored between the two reads (storing does
                # not wait for this lock, and each read sees its own snapshot) is then counted
                # twice, erring on the safe side, instead of in neither.
                held_cost, held_tokens = usage.reserved(
                    session, tenant_id, scope, now, excluding=run_id
                )
                spent = spent_since(session, tenant_id, scope, start)
                committed = Spent(spent.cost + held_cost, spent.tokens + held_tokens)
                self._observe(budget, tenant_slug, committed)
                problem = _over(budget, committed, estimate)
                if problem is not None:  # raising rolls the reservation back
                    retry_after = max(1, int((end - now).total_seconds()) + 1)
                    raise BudgetExceeded(
                        _describe(budget, tenant_slug, problem), retry_after=retry_after
                    )

    def release(self, run_id: str) -> None:
        """Give back the reservation of a run that ends without being stored."""
        with self._sessions.begin() as session:
            usage.release(session, run_id)

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
                f"max_cost={budget.max_cost:.2f} would be exceeded: spent or in flight "
                f"{spent.cost:.2f}, "
                f"this run may cost up to {estimate.cost or 0.0:.4f}"
            )
    if budget.max_tokens is not None and spent.tokens + estimate.tokens > budget.max_tokens:
        return (
            f"max_tokens={budget.max_tokens} would be exceeded: spent or in flight "
            f"{spent.tokens} tokens, "
            f"this run may use up to {estimate.tokens}"
        )
    return None
