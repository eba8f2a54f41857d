"""Daily usage totals add up per tenant, task and UTC day on both backends."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from shipyard.storage.usage import add_usage, usage_since
from tests.conftest import make_container, write_tiny_project


def test_usage_accumulates_per_day_and_task(
    backend: str, fresh_database: Callable[[str], str], tmp_path: Path
) -> None:
    container = make_container(
        write_tiny_project(tmp_path / "p"), tmp_path / "s", fresh_database(backend)
    )
    tenant = container.access.ensure_tenant("default").id
    other = container.access.ensure_tenant("other").id
    today = datetime(2026, 12, 2, 23, 30, tzinfo=UTC)
    yesterday = today - timedelta(days=1)
    with container.sessions.begin() as session:
        add_usage(session, tenant, "draft", today, 0.25, 100)
        add_usage(session, tenant, "draft", today, 0.5, 50)
        add_usage(session, tenant, "summarise", today, 1.0, 10)
        add_usage(session, tenant, "draft", yesterday, 4.0, 1000)
        add_usage(session, other, "draft", today, 9.0, 9)
    midnight = today.replace(hour=0, minute=30)
    with container.sessions() as session:
        assert usage_since(session, tenant, "draft", midnight) == (0.75, 150)
        assert usage_since(session, tenant, None, midnight) == (1.75, 160)
        assert usage_since(session, tenant, "draft", yesterday) == (4.75, 1150)
        assert usage_since(session, other, None, midnight) == (9.0, 9)
    container.close()
