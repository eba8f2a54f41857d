"""Bad input gets a problem+json 4xx naming the field; nothing a client sends causes a 500."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.conftest import TenantKeys

RUNS = "/v1/tasks/triage/runs"


def problem(response) -> dict:  # type: ignore[no-untyped-def]
    assert response.headers["content-type"] == "application/problem+json", response.text
    body = response.json()
    assert {"type", "title", "status", "detail"} <= set(body)
    assert body["status"] == response.status_code
    return body


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"input": {}}, "input.text"),
        ({"input": {"text": ""}}, "input.text"),
        ({"input": {"text": "x" * 501}}, "input.text"),
        ({"input": {"text": 42}}, "input.text"),
        ({"input": {"text": "ok", "extra": 1}}, "input.extra"),
        ({"text": "missing envelope"}, "input"),
        ([1, 2, 3], "body"),
    ],
)
def test_invalid_input_names_the_field(
    client: TestClient, tenant: TenantKeys, body: object, field: str
) -> None:
    response = client.post(RUNS, json=body, headers=tenant.auth())
    assert response.status_code == 422
    assert field in [error["field"] for error in problem(response)["errors"]]


def test_malformed_json_is_a_422_naming_the_body(client: TestClient, tenant: TenantKeys) -> None:
    response = client.post(
        RUNS,
        content=b'{"input": {"text": "unterminated',
        headers={**tenant.auth(), "content-type": "application/json"},
    )
    assert response.status_code == 422
    assert problem(response)["errors"][0]["field"] == "body"


def test_body_over_the_limit_gets_413_from_content_length(
    client: TestClient, tenant: TenantKeys
) -> None:
    limit = client.app.state.container.settings.max_request_bytes  # type: ignore[attr-defined]
    response = client.post(
        RUNS,
        content=b"x" * (limit + 1),
        headers={**tenant.auth(), "content-type": "application/json"},
    )
    assert response.status_code == 413
    assert problem(response)["type"].endswith("/payload-too-large")


def test_chunked_body_over_the_limit_gets_413_while_streaming(
    client: TestClient, tenant: TenantKeys
) -> None:
    limit = client.app.state.container.settings.max_request_bytes  # type: ignore[attr-defined]
    sent = {"bytes": 0}

    def chunks():  # type: ignore[no-untyped-def]
        for _ in range(limit // 1024 + 50):
            sent["bytes"] += 1024
            yield b" " * 1024

    response = client.post(
        RUNS, content=chunks(), headers={**tenant.auth(), "content-type": "application/json"}
    )
    assert response.status_code == 413
    problem(response)


def test_unknown_route_and_wrong_method_are_problems(client: TestClient) -> None:
    assert problem(client.get("/v1/nothing-here"))["status"] == 404
    assert problem(client.delete("/v1/tasks"))["status"] == 405


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 1000},
        {"status": "bogus"},
        {"cursor": "!!!"},
        {"created_after": "yesterday"},
    ],
)
def test_bad_list_parameters_are_422(client: TestClient, tenant: TenantKeys, params: dict) -> None:
    response = client.get("/v1/runs", params=params, headers=tenant.auth())
    assert response.status_code == 422
    assert problem(response)["errors"]


def test_non_json_content_type_is_a_4xx(client: TestClient, tenant: TenantKeys) -> None:
    response = client.post(
        RUNS, content=b"text=hello", headers={**tenant.auth(), "content-type": "text/plain"}
    )
    assert 400 <= response.status_code < 500
    problem(response)


@pytest.mark.parametrize("text", ["nul \u0000 inside", "emoji 🚀 and accents é", "\ud7ff edge"])
def test_unusual_text_is_stored_or_refused_cleanly(
    client: TestClient, tenant: TenantKeys, text: str
) -> None:
    response = client.post(RUNS, json={"input": {"text": text}}, headers=tenant.auth())
    assert response.status_code in (201, 422), response.text
    if response.status_code == 201:
        stored = client.get(f"/v1/runs/{response.json()['id']}", headers=tenant.auth())
        assert stored.json()["input"]["text"] == text


class _FaultyRunner:
    """Stands in for a model that crashes (a fault we cannot trigger in the real model)."""

    model_name = "local/broken"
    artifact = None

    def run(self, inputs: object, context: object = None) -> object:
        raise RuntimeError("segfault-like model failure")

    def run_many(self, batch: object, context: object = None) -> object:
        raise RuntimeError("segfault-like model failure")


def test_a_model_fault_is_a_503_and_the_run_is_kept_as_failed(
    client: TestClient, tenant: TenantKeys, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = client.app.state.container.runtime  # type: ignore[attr-defined]
    monkeypatch.setitem(runtime._runners, "triage", _FaultyRunner())
    response = client.post(RUNS, json={"input": {"text": "card?"}}, headers=tenant.auth())
    assert response.status_code == 503
    assert problem(response)["type"].endswith("/run-failed")
    assert "segfault" not in response.text
    failed = client.get("/v1/runs", params={"status": "failed"}, headers=tenant.auth()).json()
    assert len(failed["items"]) == 1
    assert failed["items"][0]["error"] == "RuntimeError"
    assert failed["items"][0]["input"] == {"text": "card?"}


def test_an_unexpected_error_is_a_500_problem_carrying_the_request_id(
    client: TestClient, tenant: TenantKeys, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = client.app.state.container.runs  # type: ignore[attr-defined]

    def explode(*_args: object, **_kwargs: object) -> None:
        raise KeyError("internal detail")

    monkeypatch.setattr(runs, "create", explode)
    response = client.post(
        RUNS, json={"input": {"text": "x"}}, headers={**tenant.auth(), "X-Request-ID": "trace-me-1"}
    )
    assert response.status_code == 500
    body = problem(response)
    assert body["request_id"] == "trace-me-1"
    assert response.headers["x-request-id"] == "trace-me-1"
    assert "internal detail" not in response.text
    assert "Traceback" not in response.text
