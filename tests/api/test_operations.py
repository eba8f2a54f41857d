"""Health, readiness, metrics and logs."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from shipyard.access.roles import Role
from shipyard.api.app import create_app
from shipyard.observability.logging import ContextFilter, JsonFormatter
from tests.conftest import TenantKeys, make_container


def test_healthz(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}


def test_readyz_is_ready_when_models_are_loaded(client: TestClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"]["tasks"] == {"ready": 3, "not_ready": 0}


def test_readyz_and_runs_say_what_is_missing_when_a_task_is_untrained(
    tiny_project: Path, tmp_path: Path, fresh_database: Callable[[str], str]
) -> None:
    container = make_container(tiny_project, tmp_path, fresh_database("sqlite"))
    with TestClient(create_app(container), raise_server_exceptions=False) as client:
        response = client.get("/readyz")
        assert response.status_code == 503
        # The answer task has no model to train, so it is ready from the start.
        assert response.json()["checks"]["tasks"] == {"ready": 1, "not_ready": 2}
        _key, token = container.access.create_key(
            "default", name="k", roles=frozenset({Role.CALLER}), expires_at=None, actor="tests"
        )
        run = client.post(
            "/v1/tasks/triage/runs",
            json={"input": {"text": "hi"}},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert run.status_code == 503
        assert run.json()["type"].endswith("/model-not-ready")
        tasks = client.get("/v1/tasks", headers={"Authorization": f"Bearer {token}"}).json()
        untrained = [task for task in tasks if task["kind"] == "classify"]
        assert len(untrained) == 2
        assert all(not task["ready"] and "shipyard train" in task["status"] for task in untrained)
    container.close()


def test_metrics_count_runs_by_task_version_and_status(
    client: TestClient, tenant: TenantKeys
) -> None:
    def runs_ok() -> float:
        text = client.get("/metrics").text
        for line in text.splitlines():
            if (
                line.startswith("shipyard_runs_total{")
                and 'task="triage"' in line
                and 'status="ok"' in line
                and 'version="1"' in line
            ):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    before = runs_ok()
    client.post(
        "/v1/tasks/triage/runs", json={"input": {"text": "card arrival"}}, headers=tenant.auth()
    )
    assert runs_ok() == before + 1
    text = client.get("/metrics").text
    assert "shipyard_run_latency_seconds_bucket" in text
    assert "shipyard_model_latency_seconds_bucket" in text
    assert "shipyard_run_confidence_bucket" in text
    assert 'shipyard_http_requests_total{method="POST",route="/v1/tasks/triage/runs"' in text


def test_logs_are_json_with_request_id_and_carry_no_payload_or_key(
    client: TestClient, tenant: TenantKeys, caplog: pytest.LogCaptureFixture
) -> None:
    secret_text = "my card 4111111111111111 never arrived at 12 Secret Street"
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    handler.addFilter(ContextFilter())
    logger = logging.getLogger("shipyard")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        response = client.post(
            "/v1/tasks/triage/runs",
            json={"input": {"text": secret_text}},
            headers={**tenant.auth(), "X-Request-ID": "req-abc.123"},
        )
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    assert response.headers["x-request-id"] == "req-abc.123"
    formatter = JsonFormatter()
    lines = [formatter.format(record) for record in records]
    entries = [json.loads(line) for line in lines]
    access = next(entry for entry in entries if entry["msg"] == "request")
    assert access["request_id"] == "req-abc.123"
    assert access["route"] == "/v1/tasks/triage/runs"
    # The run's own span is a child of the request span: one trace id from edge to model.
    assert access["trace_id"] == response.json()["trace_id"]
    joined = "\n".join(lines)
    assert "4111111111111111" not in joined
    assert "Secret Street" not in joined
    assert tenant.tokens["caller"] not in joined


def test_request_id_that_could_inject_log_lines_is_replaced(client: TestClient) -> None:
    response = client.get("/healthz", headers={"X-Request-ID": "abc\nfake=1"})
    assert response.headers["x-request-id"] != "abc\nfake=1"
    assert len(response.headers["x-request-id"]) == 32


def test_a_clients_traceparent_is_not_trusted_by_default(
    client: TestClient, tenant: TenantKeys
) -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    response = client.post(
        "/v1/tasks/triage/runs",
        json={"input": {"text": "card arrival"}},
        headers={**tenant.auth(), "traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"},
    )
    assert len(response.json()["trace_id"]) == 32
    assert response.json()["trace_id"] != trace_id
