"""Budgets: period arithmetic, and refusals over HTTP before anything reaches the model."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from shipyard.api.app import create_app
from shipyard.governance.budgets import period_bounds
from shipyard.storage.tables import Run, UsageReservation
from tests.conftest import new_tenant
from tests.llm_project import llm_container, write_generate_project
from tests.providers.llm.conftest import llama_url  # noqa: F401  # fixture
from tests.providers.llm.fault_proxy import FaultProxy


def test_period_bounds_are_utc_day_and_month() -> None:
    now = datetime(2026, 12, 31, 22, 30, tzinfo=UTC)
    assert period_bounds("day", now) == (
        datetime(2026, 12, 31, tzinfo=UTC),
        datetime(2027, 1, 1, tzinfo=UTC),
    )
    assert period_bounds("month", now) == (
        datetime(2026, 12, 1, tzinfo=UTC),
        datetime(2027, 1, 1, tzinfo=UTC),
    )


@pytest.fixture
def served(llama_url: str) -> Iterator[FaultProxy]:  # noqa: F811
    proxy = FaultProxy(llama_url)
    yield proxy
    proxy.close()


def client_with(served: FaultProxy, tmp_path: Path, budgets: list[dict]) -> TestClient:
    project = write_generate_project(tmp_path / "project")
    container = llm_container(project, tmp_path / "state", served.url, budgets=budgets)
    return TestClient(create_app(container), raise_server_exceptions=False)


@pytest.mark.llm
def test_a_run_over_the_cost_budget_is_refused_before_the_model_is_called(
    served: FaultProxy, tmp_path: Path
) -> None:
    # One run's worst case (~0.03) fits in 0.05; after it, the next worst case does not.
    budget = {"tenant": "*", "task": "draft-reply", "period": "day", "max_cost": 0.05}
    with client_with(served, tmp_path, [budget]) as client:
        container = client.app.state.container  # type: ignore[attr-defined]
        keys = new_tenant(container)
        body = {"input": {"text": "Where is my order?"}}
        first = client.post("/v1/tasks/draft-reply/runs", json=body, headers=keys.auth())
        assert first.status_code == 201, first.text
        assert served.count == 1
        refused = client.post("/v1/tasks/draft-reply/runs", json=body, headers=keys.auth())
        assert refused.status_code == 429, refused.text
        problem = refused.json()
        assert problem["type"].endswith("/budget-exceeded")
        assert (
            f"budget tenant={keys.slug} task=draft-reply period=day max_cost=0.05"
            in problem["detail"]
        )
        assert 0 < int(refused.headers["retry-after"]) <= 86_400
        assert served.count == 1  # nothing was sent for the refused run
        # Streaming is checked the same way.
        streamed = client.post("/v1/tasks/draft-reply/runs:stream", json=body, headers=keys.auth())
        assert streamed.status_code == 429
        assert served.count == 1
        other = new_tenant(container)  # "*" is a budget per tenant, not a shared pot
        assert (
            client.post("/v1/tasks/draft-reply/runs", json=body, headers=other.auth()).status_code
            == 201
        )
        metrics = client.get("/metrics").text
        assert "shipyard_budget_remaining" in metrics


@pytest.mark.llm
def test_a_token_budget_smaller_than_one_run_refuses_it(served: FaultProxy, tmp_path: Path) -> None:
    budget = {"tenant": "*", "task": "*", "period": "month", "max_tokens": 10}
    with client_with(served, tmp_path, [budget]) as client:
        keys = new_tenant(client.app.state.container)  # type: ignore[attr-defined]
        refused = client.post(
            "/v1/tasks/sentiment/runs", json={"input": {"text": "fine"}}, headers=keys.auth()
        )
        assert refused.status_code == 429
        assert "task=* period=month max_tokens=10 would be exceeded" in refused.json()["detail"]
        assert "retry-after" in refused.headers
        assert served.count == 0


def test_a_cost_budget_fails_closed_for_an_unpriced_model() -> None:
    from shipyard.governance.budgets import Spent, UsageEstimate, _over
    from shipyard.settings import BudgetSettings

    budget = BudgetSettings(tenant="*", task="*", period="day", max_cost=5.0)
    reason = _over(budget, Spent(0.0, 0), UsageEstimate(tokens=10, cost=None))
    assert reason is not None
    assert "no price configured" in reason
    assert _over(budget, Spent(0.0, 0), UsageEstimate(tokens=10, cost=0.01)) is None


@pytest.mark.llm
def test_a_stream_closed_before_it_started_gives_its_hold_back(
    served: FaultProxy, tmp_path: Path
) -> None:
    budget = {"tenant": "*", "task": "draft-reply", "period": "day", "max_tokens": 100_000}
    with client_with(served, tmp_path, [budget]) as client:
        container = client.app.state.container  # type: ignore[attr-defined]
        keys = new_tenant(container)
        principal = container.access.authenticate(keys.tokens["caller"])

        def holds() -> int:
            with container.sessions() as session:
                return int(session.scalar(select(func.count()).select_from(UsageReservation)))

        stream = container.runs.stream(principal, "draft-reply", {"text": "Where is my order?"})
        assert holds() == 1  # checked and held before the first byte
        stream.close()  # the client went away before the response started
        assert holds() == 0
        assert served.count == 0  # nothing was sent to the model
        finished = container.runs.stream(principal, "draft-reply", {"text": "Hello"})
        assert isinstance(list(finished)[-1], Run)  # stored: usage booked, hold dropped
        assert holds() == 0
