"""Daily usage totals per tenant and task, for budgets (see tables.UsageDay)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from shipyard.storage.tables import UsageDay, UsageReservation


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


# -- reservations of runs in flight ---------------------------------------------------------
def reserve(
    session: Session,
    reservation_id: str,
    tenant_id: str,
    task: str,
    cost: float,
    tokens: int,
    expires_at: datetime,
) -> None:
    session.add(
        UsageReservation(
            id=reservation_id,
            tenant_id=tenant_id,
            task=task,
            cost=cost,
            tokens=tokens,
            expires_at=expires_at,
        )
    )
    session.flush()


def reserved(
    session: Session, tenant_id: str, task: str | None, now: datetime, *, excluding: str
) -> tuple[float, int]:
    """(cost, tokens) held by the tenant's unexpired reservations other than ``excluding``."""
    query = select(
        func.coalesce(func.sum(UsageReservation.cost), 0.0),
        func.coalesce(func.sum(UsageReservation.tokens), 0),
    ).where(
        UsageReservation.tenant_id == tenant_id,
        UsageReservation.expires_at > now,
        UsageReservation.id != excluding,
    )
    if task is not None:
        query = query.where(UsageReservation.task == task)
    cost, tokens = session.execute(query).one()
    return float(cost or 0.0), int(tokens or 0)


def release(session: Session, reservation_id: str) -> None:
    """Drop a run's reservation (a no-op when it had none), in the transaction that books it."""
    session.execute(delete(UsageReservation).where(UsageReservation.id == reservation_id))


def drop_expired(session: Session, tenant_id: str, now: datetime) -> None:
    session.execute(
        delete(UsageReservation).where(
            UsageReservation.tenant_id == tenant_id, UsageReservation.expires_at <= now
        )
    )
