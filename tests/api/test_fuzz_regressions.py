"""Plain regression tests for what the Schemathesis fuzz run (tests/api/test_fuzz.py) found,
each reproducing the input that exposed the problem."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from shipyard.access.roles import Role
from tests.conftest import TenantKeys

GARBAGE_KEY = {"Authorization": "Bearer garbage"}


@pytest.mark.parametrize("path", ["/v1/tasks/triage/runs", "/v1/tasks/ask/runs"])
@pytest.mark.parametrize("body", [{}, {"input": {"wrong": 1}}, {"input": {"text": ""}}])
def test_a_wrong_key_with_invalid_input_is_401_not_422(
    client: TestClient, path: str, body: dict[str, Any]
) -> None:
    # Found: the run routes authenticate inside the endpoint, after FastAPI validated the
    # body, so a wrong key got 422 and the input schema's errors.
    response = client.post(path, json=body, headers=GARBAGE_KEY)
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"] == "Bearer"
    assert "errors" not in response.json()


def test_a_revoked_key_with_invalid_input_is_401(
    client: TestClient, trained_container: Any, tenant: TenantKeys
) -> None:
    trained_container.access.revoke_key(tenant.key_ids["caller"], actor="tests")
    response = client.post("/v1/tasks/triage/runs", json={}, headers=tenant.auth())
    assert response.status_code == 401
    assert "revoked" in response.json()["detail"]


def test_a_valid_key_with_invalid_input_still_gets_the_field_errors(
    client: TestClient, tenant: TenantKeys
) -> None:
    response = client.post("/v1/tasks/triage/runs", json={}, headers=tenant.auth())
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "input"


@pytest.mark.parametrize(
    ("path", "template"),
    [
        ("/v1/collections", "/v1/collections"),
        ("/v1/collections/some-name", "/v1/collections/{collection}"),
        ("/v1/runs/some-id", "/v1/runs/{run_id}"),
    ],
)
def test_405_allow_names_every_method_of_the_path(
    client: TestClient, tenant: TenantKeys, path: str, template: str
) -> None:
    # Found: Starlette's Allow named only the first matching route's method (FastAPI has one
    # route per method), e.g. `OPTIONS /v1/collections` -> `Allow: GET`.
    documented = client.get("/openapi.json").json()["paths"][template]
    response = client.options(path, headers=tenant.auth("operator"))
    assert response.status_code == 405
    assert response.headers["allow"] == ", ".join(sorted(m.upper() for m in documented))
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("value", ["0.5", "1700000000", "-1"])
def test_a_number_is_not_a_date_time(client: TestClient, tenant: TenantKeys, value: str) -> None:
    # Found: `GET /v1/runs?created_before=0.5` was read as Unix time and answered 200.
    response = client.get(
        "/v1/runs", params={"created_before": value}, headers=tenant.auth("operator")
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "created_before"


def test_an_iso_date_time_is_still_accepted(client: TestClient, tenant: TenantKeys) -> None:
    response = client.get(
        "/v1/runs",
        params={
            "created_after": "2020-01-01T00:00:00Z",
            "created_before": "2999-01-01T00:00:00+02:00",
        },
        headers=tenant.auth("operator"),
    )
    assert response.status_code == 200


def test_an_audit_cursor_beyond_the_sequence_range_is_422(
    client: TestClient, tenant: TenantKeys
) -> None:
    # Found on PostgreSQL: `GET /v1/audit?before_seq=3061021049` overflowed the 32-bit `seq`
    # column in the query and answered 500.
    response = client.get(
        "/v1/audit", params={"before_seq": 3061021049}, headers=tenant.auth("admin")
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "before_seq"
    largest = client.get(
        "/v1/audit", params={"before_seq": 2**31 - 1}, headers=tenant.auth("admin")
    )
    assert largest.status_code == 200


# -- the OpenAPI document describes the answers the app gives -------------------------------
@pytest.fixture(scope="module")
def document(client: TestClient) -> dict[str, Any]:
    return dict(client.get("/openapi.json").json())


def _operations(document: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{method.upper()} {path}", operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
    ]


def test_every_error_response_is_documented_as_a_problem(document: dict[str, Any]) -> None:
    # Found: 401/403/429 were undocumented on most routes, and 422 was documented as FastAPI's
    # JSON HTTPValidationError while the app answers problem+json.
    problem = {"$ref": "#/components/schemas/Problem"}
    assert "HTTPValidationError" not in document["components"]["schemas"]
    for label, operation in _operations(document):
        responses = operation["responses"]
        expected = set()
        if operation.get("security"):
            expected |= {"401", "403", "429"}
        if operation.get("parameters") or "requestBody" in operation:
            expected.add("422")
        if "requestBody" in operation:
            expected |= {"400", "413"}
        assert expected <= set(responses), label
        for status in expected:
            content = responses[status]["content"]
            assert content == {"application/problem+json": {"schema": problem}}, (label, status)


def test_probe_and_metrics_responses_are_documented(document: dict[str, Any]) -> None:
    # Found: /readyz answers 503 when not ready and /metrics is text/plain; neither was listed.
    assert "503" in document["paths"]["/readyz"]["get"]["responses"]
    metrics = document["paths"]["/metrics"]["get"]["responses"]["200"]
    assert "text/plain" in metrics["content"]


def test_an_upload_needs_at_least_one_file(
    client: TestClient, tenant: TenantKeys, document: dict[str, Any]
) -> None:
    # Found: the multipart schema allowed `files: []`, which the app refuses.
    upload = document["paths"]["/v1/collections/{collection}/documents"]["post"]
    multipart = upload["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert multipart["properties"]["files"]["minItems"] == 1
    client.post("/v1/collections", json={"name": "fuzz-empty"}, headers=tenant.auth("operator"))
    response = client.post(
        "/v1/collections/fuzz-empty/documents",
        files={"groups": (None, "a")},
        headers=tenant.auth("operator"),
    )
    assert response.status_code == 422


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        (
            "POST",
            "/v1/keys",
            {"name": "k", "roles": ["caller"], "expires_in_days": "5"},
            "expires_in_days",
        ),
        (
            "POST",
            "/v1/keys",
            {"name": "k", "roles": ["caller"], "expires_in_days": True},
            "expires_in_days",
        ),
        (
            "POST",
            "/v1/collections",
            {"name": "strict-types", "retention_days": 7.5},
            "retention_days",
        ),
        ("POST", "/v1/collections/none/search", {"query": "x", "k": "5"}, "k"),
    ],
)
def test_numbers_and_booleans_are_not_coerced_from_other_types(
    client: TestClient, tenant: TenantKeys, method: str, path: str, body: dict[str, Any], field: str
) -> None:
    # Found (platform-admin fuzzing of /v1/tenants): PATCH {"disabled": 0} was accepted as
    # false; pydantic's lax mode also took "5" and true for integers (7.0 is an integer to
    # JSON Schema and stays accepted; 7.5 is not).
    response = client.request(method, path, json=body, headers=tenant.auth("admin"))
    assert response.status_code == 422, response.text
    assert field in [error["field"] for error in response.json()["errors"]]


def test_a_tenant_is_not_disabled_by_a_zero(trained_container: Any, client: TestClient) -> None:
    _key, token = trained_container.access.create_key(
        "default",
        name="platform-regression",
        roles=frozenset({Role.PLATFORM_ADMIN}),
        expires_at=None,
        actor="tests",
    )
    headers = {"Authorization": f"Bearer {token}"}
    created = client.post("/v1/tenants", json={"slug": "strict-bool"}, headers=headers)
    assert created.status_code == 201, created.text
    for value in (0, 1, "true", []):
        response = client.patch(
            "/v1/tenants/strict-bool", json={"disabled": value}, headers=headers
        )
        assert response.status_code == 422, (value, response.text)
        assert response.json()["errors"][0]["field"] == "disabled"
    assert client.patch("/v1/tenants/strict-bool", json={"disabled": True}, headers=headers).json()[
        "disabled_at"
    ]
