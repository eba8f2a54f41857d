"""Daily usage totals per tenant and task, for budgets (see tables.UsageDay)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from shipyard.storage.tables import UsageDay


def day_of(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d")


def add_usage(
    session: Session, tenant_id: str, task: str, moment: datetime, cost: float, tokens: int
) -> None:
    """Add one run's usage in the caller's transaction; concurrent runs add, never overwrite."""
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    statement = insert(UsageDay).values(
        tenant_id=tenant_id, task=task, day=day_of(moment), cost=cost, tokens=tokens, runs=1
    )
    session.execute(
        statement.on_conflict_do_update(
            index_elements=["tenant_id", "task", "day"],
            set_={
                "cost": UsageDay.cost + statement.excluded.cost,
                "tokens": UsageDay.tokens + statement.excluded.tokens,
                "runs": UsageDay.runs + 1,
            },
        )
    )


def usage_since(
    session: Session, tenant_id: str, task: str | None, since: datetime
) -> tuple[float, int]:
    """(cost, tokens) since the UTC day of ``since`` (periods start at midnight UTC)."""
    query = select(
        func.coalesce(func.sum(UsageDay.cost), 0.0), func.coalesce(func.sum(UsageDay.tokens), 0)
    ).where(UsageDay.tenant_id == tenant_id, UsageDay.day >= day_of(since))
    if task is not None:
        query = query.where(UsageDay.task == task)
    cost, tokens = session.execute(query).one()
    return float(cost or 0.0), int(tokens or 0)
