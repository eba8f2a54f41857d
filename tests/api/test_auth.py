"""Authentication and authorization of API keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text, update

from shipyard.access.roles import Role
from shipyard.bootstrap import Container
from shipyard.storage.tables import ApiKey
from tests.conftest import TenantKeys

RUNS = "/v1/tasks/triage/runs"
BODY = {"input": {"text": "my card has not arrived"}}


@pytest.mark.parametrize(
    "header",
    [
        None,
        "Bearer",
        "Bearer not-a-key",
        "Basic dXNlcjpwYXNz",
        "Bearer sy_aaaaaaaaaaaa_" + "A" * 43,
    ],
)
def test_missing_or_invalid_key_is_401(client: TestClient, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    response = client.post(RUNS, json=BODY, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.headers["content-type"] == "application/problem+json"


def test_right_key_id_with_wrong_secret_is_401(client: TestClient, tenant: TenantKeys) -> None:
    token = tenant.tokens["caller"]
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    assert (
        client.post(RUNS, json=BODY, headers={"Authorization": f"Bearer {forged}"}).status_code
        == 401
    )


def test_expired_key_is_401(
    client: TestClient, trained_container: Container, tenant: TenantKeys
) -> None:
    with trained_container.sessions.begin() as session:
        session.execute(
            update(ApiKey)
            .where(ApiKey.id == tenant.key_ids["caller"])
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    response = client.post(RUNS, json=BODY, headers=tenant.auth())
    assert response.status_code == 401
    assert "expired" in response.json()["detail"]


def test_revoked_key_is_refused_on_the_next_request(
    client: TestClient, trained_container: Container, tenant: TenantKeys
) -> None:
    assert client.post(RUNS, json=BODY, headers=tenant.auth()).status_code == 201
    trained_container.access.revoke_key(tenant.key_ids["caller"], actor="tests")
    response = client.post(RUNS, json=BODY, headers=tenant.auth())
    assert response.status_code == 401
    assert "revoked" in response.json()["detail"]


@pytest.mark.parametrize(
    ("role", "status"), [("caller", 201), ("operator", 201), ("admin", 201), ("reviewer", 403)]
)
def test_roles_that_may_run_a_task(
    client: TestClient, tenant: TenantKeys, role: str, status: int
) -> None:
    response = client.post(RUNS, json=BODY, headers=tenant.auth(role))
    assert response.status_code == status
    if status == 403:
        assert response.json()["type"].endswith("/forbidden")


def test_keys_are_stored_only_as_keyed_hashes(
    trained_container: Container, tenant: TenantKeys
) -> None:
    token = tenant.tokens["admin"]
    secret_part = token.split("_", 2)[2]
    with trained_container.sessions() as session:
        key = session.execute(
            select(ApiKey).where(ApiKey.id == tenant.key_ids["admin"])
        ).scalar_one()
        assert key.key_hash != token
        assert len(key.key_hash) == 64
        dump = " ".join(
            str(row)
            for table in ("api_keys", "audit_events")
            for row in session.execute(text(f"select * from {table}")).all()
        )
    assert secret_part not in dump


def test_a_key_cannot_be_created_for_an_unknown_tenant(trained_container: Container) -> None:
    from shipyard.errors import NotFound

    with pytest.raises(NotFound):
        trained_container.access.create_key(
            "no-such-tenant",
            name="x",
            roles=frozenset({Role.CALLER}),
            expires_at=None,
            actor="tests",
        )


def test_last_used_time_is_recorded(
    client: TestClient, trained_container: Container, tenant: TenantKeys
) -> None:
    client.get("/v1/tasks", headers=tenant.auth("reviewer"))
    keys = {k.id: k for k in trained_container.access.keys(tenant.slug)}
    assert keys[tenant.key_ids["reviewer"]].last_used_at is not None
    assert keys[tenant.key_ids["operator"]].last_used_at is None


def test_no_key_is_401_even_with_an_invalid_body(client: TestClient) -> None:
    response = client.post(RUNS, json={"input": {"wrong": 1}})
    assert response.status_code == 401
