"""Alembic environment: run with the connection Shipyard hands over (see migrate.py)."""

from __future__ import annotations

from typing import Any

from alembic import context

from shipyard.storage.tables import Base

connection = context.config.attributes["connection"]


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    # The knowledge index tables (kb_*) are written by hand per backend (FTS5, pgvector) and
    # have no ORM model: autogenerate must not propose dropping them.
    return not (type_ == "table" and name is not None and name.startswith("kb_"))


context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    include_object=include_object,
)
with context.begin_transaction():
    context.run_migrations()
