"""Alembic migrations build exactly the schema the table models describe, on both backends."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from shipyard.storage import migrate
from shipyard.storage.db import make_engine
from shipyard.storage.tables import Base


def not_raw_sql(name: str | None, type_: str, _parents: Mapping[str, str | None]) -> bool:
    """The knowledge index's ``kb_*`` tables are backend-specific SQL, not ORM models."""
    return not (type_ == "table" and name is not None and name.startswith("kb_"))


def test_upgrade_creates_every_table_and_matches_the_models(
    backend: str, fresh_database: Callable[[str], str]
) -> None:
    engine = make_engine(fresh_database(backend))
    assert not migrate.is_current(engine)
    migrate.upgrade(engine)
    assert migrate.is_current(engine)
    assert set(Base.metadata.tables) <= set(inspect(engine).get_table_names())
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"include_name": not_raw_sql})
        diff = compare_metadata(context, Base.metadata)
    assert diff == []
    migrate.upgrade(engine)  # idempotent
    engine.dispose()


def test_sqlite_runs_in_wal_mode(fresh_database: Callable[[str], str]) -> None:
    engine = make_engine(fresh_database("sqlite"))
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    engine.dispose()
