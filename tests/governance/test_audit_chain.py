"""The audit chain detects edited, deleted and reordered rows, on SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import delete, select, text, update

from shipyard.access.roles import Role
from shipyard.bootstrap import Container
from shipyard.governance import audit
from shipyard.storage.tables import AuditEvent
from tests.conftest import make_container


@pytest.fixture
def chain(
    backend: str, tiny_project: Path, tmp_path: Path, fresh_database: Callable[[str], str]
) -> Iterator[Container]:
    container = make_container(tiny_project, tmp_path, fresh_database(backend))
    for index in range(5):
        container.access.create_key(
            "default",
            name=f"k{index}",
            roles=frozenset({Role.CALLER}),
            expires_at=None,
            actor="tests",
        )
    yield container
    container.close()


def events(container: Container) -> list[AuditEvent]:
    with container.sessions() as session:
        return list(session.execute(select(AuditEvent).order_by(AuditEvent.seq)).scalars())


def test_intact_chain_verifies(chain: Container) -> None:
    result = chain.audit.verify()
    assert result.ok
    assert result.events == len(events(chain)) == 6  # tenant + 5 keys
    assert [e.action for e in events(chain)] == ["tenant.created"] + ["key.created"] * 5


def test_each_event_links_to_the_previous_hash(chain: Container) -> None:
    rows = events(chain)
    assert rows[0].prev_hash == audit.GENESIS_HASH
    assert all(later.prev_hash == earlier.hash for earlier, later in itertools.pairwise(rows))


def test_edited_row_is_named(chain: Container) -> None:
    victim = events(chain)[2]
    with chain.sessions.begin() as session:
        session.execute(
            update(AuditEvent).where(AuditEvent.seq == victim.seq).values(actor="someone-else")
        )
    result = chain.audit.verify()
    assert not result.ok
    assert (result.first_bad_seq, result.first_bad_id) == (victim.seq, victim.id)
    assert "edited" in (result.reason or "")


def test_edited_row_with_recomputed_hash_breaks_the_next_link(chain: Container) -> None:
    rows = events(chain)
    victim = rows[1]
    victim.data = {**victim.data, "roles": ["admin"]}
    forged = audit.event_hash(victim)
    with chain.sessions.begin() as session:
        session.execute(
            update(AuditEvent)
            .where(AuditEvent.seq == victim.seq)
            .values(data=victim.data, hash=forged)
        )
    result = chain.audit.verify()
    assert not result.ok
    assert result.first_bad_seq == rows[2].seq


def test_deleted_middle_row_is_found(chain: Container) -> None:
    with chain.sessions.begin() as session:
        session.execute(delete(AuditEvent).where(AuditEvent.seq == 3))
    result = chain.audit.verify()
    assert not result.ok
    assert result.first_bad_seq == 4
    assert "gap" in (result.reason or "")


def test_deleted_last_row_is_found(chain: Container) -> None:
    last = events(chain)[-1]
    with chain.sessions.begin() as session:
        session.execute(delete(AuditEvent).where(AuditEvent.seq == last.seq))
    result = chain.audit.verify()
    assert not result.ok
    assert "deleted from the end" in (result.reason or "")


def test_reordered_rows_are_found(chain: Container) -> None:
    with chain.sessions.begin() as session:
        session.execute(update(AuditEvent).where(AuditEvent.seq == 2).values(seq=-2))
        session.execute(update(AuditEvent).where(AuditEvent.seq == 3).values(seq=2))
        session.execute(update(AuditEvent).where(AuditEvent.seq == -2).values(seq=3))
    result = chain.audit.verify()
    assert not result.ok
    assert result.first_bad_seq == 2


def test_concurrent_appends_never_fork_the_chain(chain: Container) -> None:
    errors: list[BaseException] = []

    def worker(number: int) -> None:
        try:
            for index in range(5):
                chain.access.create_key(
                    "default",
                    name=f"w{number}-{index}",
                    roles=frozenset({Role.CALLER}),
                    expires_at=None,
                    actor="tests",
                )
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    result = chain.audit.verify()
    assert result.ok
    assert result.events == 6 + 20


def test_audit_rows_hold_no_key_secret(chain: Container) -> None:
    _key, token = chain.access.create_key(
        "default", name="s", roles=frozenset({Role.ADMIN}), expires_at=None, actor="tests"
    )
    with chain.sessions() as session:
        dump = str(session.execute(text("select * from audit_events")).all())
    assert token.split("_", 2)[2] not in dump
