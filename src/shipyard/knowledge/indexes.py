"""Pick the knowledge index implementation that matches the database."""

from __future__ import annotations

from sqlalchemy import Engine

from shipyard.errors import ConfigError
from shipyard.knowledge.index import KnowledgeIndex
from shipyard.knowledge.index_postgres import PostgresIndex
from shipyard.knowledge.index_sqlite import SqliteIndex


def make_index(engine: Engine) -> KnowledgeIndex:
    """The index for ``engine``'s dialect; its tables come from migration 0004."""
    dialect = engine.dialect.name
    if dialect == "sqlite":
        return SqliteIndex()
    if dialect == "postgresql":
        return PostgresIndex()
    raise ConfigError(f"no knowledge index for database dialect {dialect!r}")
