"""Budget reservations: concurrent runs of a tenant cannot pass a budget together, a stored run
trades its hold for its real usage, and the hold of a run that never ended expires. Real
SQLite and PostgreSQL, real threads."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from shipyard.bootstrap import Container
from shipyard.errors import BudgetExceeded
from shipyard.governance import budgets as budgets_module
from shipyard.governance.budgets import BudgetGuard, UsageEstimate
from shipyard.settings import BudgetSettings
from shipyard.storage.usage import add_usage, release, reserved
from tests.conftest import new_admin

TASK = "draft-reply"
RUN = UsageEstimate(tokens=100, cost=0.01)
HOLD = timedelta(minutes=5)


@pytest.fixture(scope="module")
def container(own_container: Container) -> Container:
    return own_container


def _tenant(container: Container) -> tuple[str, str]:
    principal = new_admin(container)
    return principal.tenant_id, principal.tenant_slug


def _guard(container: Container, now: Callable[[], datetime] | None = None) -> BudgetGuard:
    budgets = [BudgetSettings(tenant="*", task=TASK, period="day", max_tokens=1_000)]
    if now is None:
        return BudgetGuard(budgets, container.sessions, container.metrics)
    return BudgetGuard(budgets, container.sessions, container.metrics, now=now)


def test_a_burst_of_concurrent_runs_cannot_pass_the_budget_together(container: Container) -> None:
    tenant_id, slug = _tenant(container)
    guard = _guard(container)
    accepted: list[str] = []
    refused: list[str] = []
    start = threading.Barrier(24)

    def attempt() -> None:
        run_id = str(uuid.uuid4())
        start.wait()
        try:
            guard.reserve(run_id, tenant_id, slug, TASK, RUN, HOLD)
        except BudgetExceeded:
            refused.append(run_id)
        else:
            accepted.append(run_id)

    threads = [threading.Thread(target=attempt) for _ in range(24)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(accepted) == 10  # 1,000 tokens / 100 per run, whatever the interleaving
    assert len(refused) == 14


def test_storing_a_run_trades_its_hold_for_its_usage(container: Container) -> None:
    tenant_id, slug = _tenant(container)
    guard = _guard(container)
    held = [str(uuid.uuid4()) for _ in range(10)]
    for run_id in held:
        guard.reserve(run_id, tenant_id, slug, TASK, RUN, HOLD)
    with pytest.raises(BudgetExceeded, match="spent or in flight 1000 tokens"):
        guard.reserve(str(uuid.uuid4()), tenant_id, slug, TASK, RUN, HOLD)
    # Two runs end using 30 tokens each: 140 tokens come back.
    for run_id in held[:2]:
        with container.sessions.begin() as session:
            release(session, run_id)
            add_usage(session, tenant_id, TASK, datetime.now(UTC), 0.003, 30)
    guard.reserve(str(uuid.uuid4()), tenant_id, slug, TASK, RUN, HOLD)
    with pytest.raises(BudgetExceeded):
        guard.reserve(str(uuid.uuid4()), tenant_id, slug, TASK, RUN, HOLD)
    # A run that ends without being stored gives its hold back at once.
    guard.release(held[2])
    guard.reserve(str(uuid.uuid4()), tenant_id, slug, TASK, RUN, HOLD)


def test_the_hold_of_a_run_that_never_ended_expires(container: Container) -> None:
    tenant_id, slug = _tenant(container)
    clock = [datetime.now(UTC)]
    guard = _guard(container, now=lambda: clock[0])
    for _ in range(10):
        guard.reserve(str(uuid.uuid4()), tenant_id, slug, TASK, RUN, HOLD)
    with pytest.raises(BudgetExceeded):
        guard.reserve(str(uuid.uuid4()), tenant_id, slug, TASK, RUN, HOLD)
    clock[0] += HOLD + timedelta(seconds=1)  # the process holding them died
    guard.reserve(str(uuid.uuid4()), tenant_id, slug, TASK, RUN, HOLD)
    with container.sessions() as session:
        cost, tokens = reserved(session, tenant_id, TASK, clock[0], excluding="")
    assert tokens == 100  # the expired holds were dropped, only the new one counts
    assert cost == pytest.approx(0.01)


def test_another_tenant_or_task_is_not_held_back(container: Container) -> None:
    tenant_id, slug = _tenant(container)
    other_id, other_slug = _tenant(container)
    guard = _guard(container)
    for _ in range(10):
        guard.reserve(str(uuid.uuid4()), tenant_id, slug, TASK, RUN, HOLD)
    guard.reserve(str(uuid.uuid4()), other_id, other_slug, TASK, RUN, HOLD)
    guard.reserve(str(uuid.uuid4()), tenant_id, slug, "another-task", RUN, HOLD)  # no budget


def test_a_run_stored_during_a_check_is_never_missed(
    container: Container, monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    # On PostgreSQL storing a run does not wait for the check's lock: whichever of the check's
    # two reads (holds, usage) comes first, a run stored right after it must still be counted.
    if backend == "sqlite":
        pytest.skip("SQLite's single write lock makes the store wait for the check to end")
    tenant_id, slug = _tenant(container)
    guard = _guard(container)
    held = [str(uuid.uuid4()) for _ in range(10)]
    for run_id in held:
        guard.reserve(run_id, tenant_id, slug, TASK, RUN, HOLD)
    stored: list[str] = []

    def store_one_run() -> None:
        if stored:
            return
        stored.append(held[0])
        with container.sessions.begin() as session:  # another transaction, committed now
            release(session, held[0])
            add_usage(session, tenant_id, TASK, datetime.now(UTC), 0.01, 100)

    def after(function: Callable[..., object]) -> Callable[..., object]:
        def wrapped(*args: object, **kwargs: object) -> object:
            result = function(*args, **kwargs)
            store_one_run()
            return result

        return wrapped

    monkeypatch.setattr(budgets_module.usage, "reserved", after(budgets_module.usage.reserved))
    monkeypatch.setattr(budgets_module, "spent_since", after(budgets_module.spent_since))
    with pytest.raises(BudgetExceeded):  # 10 x 100 held or spent: no room for an 11th
        guard.reserve(str(uuid.uuid4()), tenant_id, slug, TASK, RUN, HOLD)
    assert stored == [held[0]]
