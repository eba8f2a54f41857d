"""How long the retention purge takes to find a batch of expired runs when most old runs were
purged already, with and without the partial index on unpurged runs (migration 0011).

    .venv/bin/python bench/retention_scan.py [--purged 200000] [--database-url URL]

Prints the median of 20 lookups (``expired_run_ids``, batch 500) and the query plan. Default:
a fresh SQLite file in a temporary folder.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, insert, text
from sqlalchemy.orm import Session

from shipyard.storage import migrate
from shipyard.storage.retention import expired_run_ids
from shipyard.storage.tables import Run, Tenant

TASK = "ticket-triage"


def _fill(session: Session, tenant_id: str, purged: int, live: int) -> None:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    rows = []
    for index in range(purged + live):
        is_purged = index < purged  # the oldest runs were purged by earlier passes
        rows.append(
            {
                "id": str(uuid.uuid4()),
                "tenant_id": tenant_id,
                "key_id": None,
                "task": TASK,
                "version": 1,
                "input": {} if is_purged else {"text": "hello"},
                "output": None,
                "status": "ok",
                "model": "bench",
                "latency_ms": 1.0,
                "flags": [],
                "created_at": start + timedelta(seconds=index),
                "purged_at": start if is_purged else None,
            }
        )
        if len(rows) == 10_000:
            session.execute(insert(Run), rows)
            rows = []
    if rows:
        session.execute(insert(Run), rows)


def _median_ms(session: Session, tenant_id: str, cutoff: datetime) -> float:
    times = []
    for _ in range(20):
        started = time.perf_counter()
        found = expired_run_ids(session, tenant_id, TASK, cutoff, limit=500)
        times.append((time.perf_counter() - started) * 1000)
        assert len(found) == 500
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--purged", type=int, default=200_000)
    parser.add_argument("--live", type=int, default=2_000)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url = args.database_url or f"sqlite:///{Path(folder) / 'bench.db'}"
        engine = create_engine(url)
        migrate.upgrade(engine)
        tenant_id = str(uuid.uuid4())
        with Session(engine) as session, session.begin():
            session.execute(
                insert(Tenant),
                [
                    {
                        "id": tenant_id,
                        "slug": f"b{tenant_id[:8]}",
                        "name": "bench",
                        "created_at": datetime.now(UTC),
                    }
                ],
            )
            _fill(session, tenant_id, args.purged, args.live)
        cutoff = datetime(2030, 1, 1, tzinfo=UTC)
        with Session(engine) as session:
            session.execute(text("ANALYZE"))
            with_index = _median_ms(session, tenant_id, cutoff)
            session.execute(text("DROP INDEX ix_runs_unpurged"))
            session.execute(text("ANALYZE"))
            without_index = _median_ms(session, tenant_id, cutoff)
            session.rollback()
        engine.dispose()
    print(f"backend: {engine.dialect.name}; {args.purged} purged runs, {args.live} unpurged")
    print(
        f"find a batch of 500 expired runs, median of 20: with ix_runs_unpurged "
        f"{with_index:.2f} ms, without {without_index:.2f} ms"
    )


if __name__ == "__main__":
    main()
