"""knowledge index: chunk text, access groups, full-text and vector search

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 09:00:00.000000

The chunk tables are not ORM models: their shape depends on the backend (FTS5 and an
embedding BLOB on SQLite, tsvector and pgvector on PostgreSQL), so they are written as SQL.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from shipyard.errors import ConfigError
from shipyard.knowledge.dimensions import EMBEDDING_DIM

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_SQLITE_UP = [
    """
    CREATE TABLE kb_chunks (
        rowid INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        tenant_id VARCHAR(36) NOT NULL,
        collection_id VARCHAR(36) NOT NULL,
        document_id VARCHAR(36) NOT NULL,
        chunk_index INTEGER NOT NULL,
        text TEXT NOT NULL,
        start_offset INTEGER NOT NULL,
        end_offset INTEGER NOT NULL,
        heading TEXT NULL,
        embedding BLOB NOT NULL  -- float32 little-endian, EMBEDDING_DIM values
    )
    """,
    "CREATE INDEX ix_kb_chunks_tenant_document ON kb_chunks (tenant_id, document_id)",
    "CREATE INDEX ix_kb_chunks_tenant_collection ON kb_chunks (tenant_id, collection_id)",
    """
    CREATE TABLE kb_chunk_groups (
        grp TEXT NOT NULL,
        chunk_rowid INTEGER NOT NULL,
        PRIMARY KEY (grp, chunk_rowid)
    ) WITHOUT ROWID
    """,
    "CREATE INDEX ix_kb_chunk_groups_chunk ON kb_chunk_groups (chunk_rowid)",
    # A plain FTS5 table (it keeps its own copy of the text): deleting by rowid is all it
    # takes to keep it in step, unlike external-content tables that need the old values.
    "CREATE VIRTUAL TABLE kb_chunks_fts USING fts5(text, tokenize='porter unicode61')",
    """
    CREATE TABLE kb_revisions (
        tenant_id VARCHAR(36) NOT NULL,
        collection_id VARCHAR(36) NOT NULL,
        revision INTEGER NOT NULL,
        PRIMARY KEY (tenant_id, collection_id)
    )
    """,
]

_SQLITE_DOWN = [
    "DROP TABLE kb_revisions",
    "DROP TABLE kb_chunks_fts",
    "DROP TABLE kb_chunk_groups",
    "DROP TABLE kb_chunks",
]

_POSTGRES_UP = [
    f"""
    CREATE TABLE kb_chunks (
        id TEXT PRIMARY KEY,
        tenant_id VARCHAR(36) NOT NULL,
        collection_id VARCHAR(36) NOT NULL,
        document_id VARCHAR(36) NOT NULL,
        chunk_index INTEGER NOT NULL,
        text TEXT NOT NULL,
        start_offset INTEGER NOT NULL,
        end_offset INTEGER NOT NULL,
        heading TEXT NULL,
        groups TEXT[] NOT NULL,
        embedding vector({EMBEDDING_DIM}) NOT NULL,
        tsv tsvector GENERATED ALWAYS AS (to_tsvector('english', text)) STORED
    )
    """,
    "CREATE INDEX ix_kb_chunks_tsv ON kb_chunks USING gin (tsv)",
    "CREATE INDEX ix_kb_chunks_groups ON kb_chunks USING gin (groups)",
    "CREATE INDEX ix_kb_chunks_embedding ON kb_chunks USING hnsw (embedding vector_cosine_ops)",
    "CREATE INDEX ix_kb_chunks_tenant_document ON kb_chunks (tenant_id, document_id)",
    "CREATE INDEX ix_kb_chunks_tenant_collection ON kb_chunks (tenant_id, collection_id)",
]


def _create_pgvector() -> None:
    try:
        op.execute("CREATE EXTENSION IF NOT EXISTS vector")
    except sa.exc.DBAPIError as exc:
        raise ConfigError(
            "the knowledge index needs the pgvector extension on PostgreSQL "
            f"(CREATE EXTENSION vector failed: {exc.orig})"
        ) from exc


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        statements = _SQLITE_UP
    else:
        _create_pgvector()
        statements = _POSTGRES_UP
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for statement in _SQLITE_DOWN:
            op.execute(statement)
    else:
        # Indexes go with the table; the extension stays, other schemas may use it.
        op.execute("DROP TABLE kb_chunks")
