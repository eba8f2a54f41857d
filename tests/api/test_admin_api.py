"""The admin API: tenants, keys (create, rotate with overlap, revoke) and the audit trail."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import update

from shipyard.access.roles import Role
from shipyard.bootstrap import Container
from shipyard.storage.tables import ApiKey
from tests.conftest import TenantKeys

RUNS = "/v1/tasks/triage/runs"
BODY = {"input": {"text": "my card has not arrived"}}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def audit_events(client: TestClient, tenant: TenantKeys, action: str) -> list[dict[str, Any]]:
    response = client.get("/v1/audit", params={"action": action}, headers=tenant.auth("admin"))
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def test_platform_admin_creates_a_tenant_with_a_working_first_admin_key(
    client: TestClient, tenant: TenantKeys
) -> None:
    slug = f"new-{uuid.uuid4().hex[:8]}"
    response = client.post(
        "/v1/tenants",
        json={"slug": slug, "name": "New Co", "admin_key_name": "first-admin"},
        headers=tenant.auth("platform-admin"),
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["tenant"]["slug"] == slug
    assert body["tenant"]["name"] == "New Co"
    assert body["admin_key"]["key"]["roles"] == ["admin"]
    first_admin = bearer(body["admin_key"]["token"])

    # The new tenant's admin manages its own keys, and sees only its own.
    listed = client.get("/v1/keys", headers=first_admin).json()["items"]
    assert [k["name"] for k in listed] == ["first-admin"]
    created = client.post(
        "/v1/keys", json={"name": "crm", "roles": ["caller"]}, headers=first_admin
    )
    assert created.status_code == 201, created.text
    assert client.post(RUNS, json=BODY, headers=bearer(created.json()["token"])).status_code == 201

    # Audited with who and the object after, in the new tenant's trail.
    events = client.get("/v1/audit", params={"action": "tenant.created"}, headers=first_admin)
    (event,) = events.json()["items"]
    assert event["actor"] == f"key:{tenant.key_ids['platform-admin']}"
    assert event["data"]["before"] is None
    assert event["data"]["after"]["slug"] == slug


def test_only_platform_admins_manage_tenants(client: TestClient, tenant: TenantKeys) -> None:
    for role in ("admin", "operator", "reviewer", "caller"):
        assert client.get("/v1/tenants", headers=tenant.auth(role)).status_code == 403
        response = client.post(
            "/v1/tenants", json={"slug": f"x-{uuid.uuid4().hex[:8]}"}, headers=tenant.auth(role)
        )
        assert response.status_code == 403
    duplicate = client.post(
        "/v1/tenants", json={"slug": tenant.slug}, headers=tenant.auth("platform-admin")
    )
    assert duplicate.status_code == 409


def test_an_api_caller_cannot_disable_its_own_tenant(
    client: TestClient, tenant: TenantKeys
) -> None:
    response = client.patch(
        f"/v1/tenants/{tenant.slug}", json={"disabled": True}, headers=tenant.auth("platform-admin")
    )
    assert response.status_code == 409
    assert client.get("/v1/keys", headers=tenant.auth("admin")).status_code == 200


def test_renaming_a_tenant_records_before_and_after(
    client: TestClient, tenant: TenantKeys, other_tenant: TenantKeys
) -> None:
    response = client.patch(
        f"/v1/tenants/{other_tenant.slug}",
        json={"name": "Renamed Ltd"},
        headers=tenant.auth("platform-admin"),
    )
    assert response.status_code == 200, response.text
    (event,) = audit_events(client, other_tenant, "tenant.updated")
    assert event["data"]["before"]["name"] == other_tenant.slug
    assert event["data"]["after"]["name"] == "Renamed Ltd"


def test_admin_creates_keys_only_with_rights_it_holds(
    client: TestClient, trained_container: Container, tenant: TenantKeys
) -> None:
    admin = tenant.auth("admin")
    escalate = client.post(
        "/v1/keys", json={"name": "sneaky", "roles": ["platform-admin"]}, headers=admin
    )
    assert escalate.status_code == 403
    assert "tenant:manage" in escalate.json()["detail"]
    foreign_group = client.post(
        "/v1/keys", json={"name": "hr", "roles": ["caller"], "groups": ["hr"]}, headers=admin
    )
    assert foreign_group.status_code == 403
    # An admin who is a member of "hr" may hand it on.
    key, token = trained_container.access.create_key(
        tenant.slug,
        name="hr-admin",
        roles=frozenset({Role.ADMIN}),
        expires_at=None,
        actor="tests",
        groups=frozenset({"hr"}),
    )
    granted = client.post(
        "/v1/keys",
        json={"name": "hr-bot", "roles": ["caller"], "groups": ["hr"], "expires_in_days": 30},
        headers=bearer(token),
    )
    assert granted.status_code == 201, granted.text
    out = granted.json()["key"]
    assert out["groups"] == ["hr"]
    assert out["created_by"] == f"key:{key.id}"
    assert out["state"] == "active"
    assert out["expires_at"] is not None
    # Operators run tasks but do not manage keys.
    operator = client.post(
        "/v1/keys", json={"name": "x", "roles": ["caller"]}, headers=tenant.auth("operator")
    )
    assert operator.status_code == 403


def test_another_tenants_key_is_404_like_a_random_id(
    client: TestClient, tenant: TenantKeys, other_tenant: TenantKeys
) -> None:
    admin = tenant.auth("admin")
    foreign = other_tenant.key_ids["caller"]
    for method, path in (
        ("GET", f"/v1/keys/{foreign}"),
        ("DELETE", f"/v1/keys/{foreign}"),
        ("POST", f"/v1/keys/{foreign}/rotate"),
    ):
        kwargs: dict[str, Any] = {"json": {}} if method == "POST" else {}
        theirs = client.request(method, path, headers=admin, **kwargs)
        random = client.request(
            method, path.replace(foreign, "zzzzzzzzzzzz"), headers=admin, **kwargs
        )
        assert theirs.status_code == random.status_code == 404
        assert theirs.json()["title"] == random.json()["title"]
    # And their key still works: nothing happened to it.
    assert client.post(RUNS, json=BODY, headers=other_tenant.auth("caller")).status_code == 201


def test_rotation_keeps_the_old_key_for_the_overlap_then_refuses_it(
    client: TestClient, trained_container: Container, tenant: TenantKeys
) -> None:
    old_id = tenant.key_ids["caller"]
    response = client.post(
        f"/v1/keys/{old_id}/rotate", json={"overlap_seconds": 3600}, headers=tenant.auth("admin")
    )
    assert response.status_code == 201, response.text
    new = response.json()
    assert new["key"]["rotated_from"] == old_id
    assert new["key"]["roles"] == ["caller"]
    # Both work during the overlap.
    assert client.post(RUNS, json=BODY, headers=tenant.auth("caller")).status_code == 201
    assert client.post(RUNS, json=BODY, headers=bearer(new["token"])).status_code == 201
    old = client.get(f"/v1/keys/{old_id}", headers=tenant.auth("admin")).json()
    assert old["state"] == "active"
    assert old["expires_at"] is not None

    # Once the overlap is over (moved into the past here), the old key is refused.
    with trained_container.sessions.begin() as session:
        session.execute(
            update(ApiKey)
            .where(ApiKey.id == old_id)
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    refused = client.post(RUNS, json=BODY, headers=tenant.auth("caller"))
    assert refused.status_code == 401
    assert client.post(RUNS, json=BODY, headers=bearer(new["token"])).status_code == 201

    (event,) = audit_events(client, tenant, "key.rotated")
    assert event["subject_id"] == old_id
    assert event["data"]["before"]["expires_at"] is None
    assert event["data"]["after"]["expires_at"] is not None
    assert event["data"]["after"]["replaced_by"] == new["key"]["id"]


def test_rotation_with_zero_overlap_revokes_at_once(client: TestClient, tenant: TenantKeys) -> None:
    old_id = tenant.key_ids["reviewer"]
    response = client.post(
        f"/v1/keys/{old_id}/rotate", json={"overlap_seconds": 0}, headers=tenant.auth("admin")
    )
    assert response.status_code == 201
    assert client.get("/v1/runs", headers=tenant.auth("reviewer")).status_code == 401
    assert client.get("/v1/runs", headers=bearer(response.json()["token"])).status_code == 200
    again = client.post(f"/v1/keys/{old_id}/rotate", json={}, headers=tenant.auth("admin"))
    assert again.status_code == 409


def test_revocation_is_effective_on_the_next_request_and_audited(
    client: TestClient, tenant: TenantKeys
) -> None:
    caller = tenant.auth("caller")
    assert client.post(RUNS, json=BODY, headers=caller).status_code == 201
    key_id = tenant.key_ids["caller"]
    revoked = client.delete(f"/v1/keys/{key_id}", headers=tenant.auth("admin"))
    assert revoked.status_code == 200
    assert revoked.json()["state"] == "revoked"
    assert client.post(RUNS, json=BODY, headers=caller).status_code == 401
    (event,) = audit_events(client, tenant, "key.revoked")
    assert event["data"]["before"]["revoked_at"] is None
    assert event["data"]["after"]["revoked_at"] is not None
    assert event["actor"] == f"key:{tenant.key_ids['admin']}"


def test_key_listing_shows_last_use_and_never_secrets(
    client: TestClient, tenant: TenantKeys
) -> None:
    client.post(RUNS, json=BODY, headers=tenant.auth("caller"))
    response = client.get("/v1/keys", headers=tenant.auth("admin"))
    assert response.status_code == 200
    keys = {k["id"]: k for k in response.json()["items"]}
    assert set(keys) == set(tenant.key_ids.values())
    assert keys[tenant.key_ids["caller"]]["last_used_at"] is not None
    assert all(token not in response.text for token in tenant.tokens.values())
    assert "key_hash" not in response.text


def test_bad_admin_input_names_the_field(client: TestClient, tenant: TenantKeys) -> None:
    admin = tenant.auth("admin")
    cases = [
        ({"name": "ok", "roles": ["root"]}, "roles"),
        ({"name": "ok", "roles": []}, "roles"),
        ({"name": "line\nforged", "roles": ["caller"]}, "name"),
        ({"name": "ok", "roles": ["caller"], "groups": ["bad group"]}, "groups"),
        ({"name": "ok", "roles": ["caller"], "expires_in_days": 0}, "expires_in_days"),
        ({"name": "ok", "roles": ["caller"], "owner": "me"}, "owner"),
    ]
    for body, field in cases:
        response = client.post("/v1/keys", json=body, headers=admin)
        assert response.status_code == 422, (body, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert field in response.text, (body, response.text)
    bad_slug = client.post(
        "/v1/tenants", json={"slug": "Bad Slug"}, headers=tenant.auth("platform-admin")
    )
    assert bad_slug.status_code == 422
    assert "slug" in bad_slug.text


def test_audit_listing_is_the_callers_tenant_only_and_pages(
    client: TestClient, tenant: TenantKeys, other_tenant: TenantKeys
) -> None:
    for _ in range(3):
        client.post(RUNS, json=BODY, headers=tenant.auth("caller"))
    client.post(RUNS, json=BODY, headers=other_tenant.auth("caller"))
    first = client.get("/v1/audit", params={"limit": 2}, headers=tenant.auth("operator"))
    assert first.status_code == 200
    page = first.json()
    assert len(page["items"]) == 2
    assert page["next_before_seq"] is not None
    rest = client.get(
        "/v1/audit",
        params={"limit": 500, "before_seq": page["next_before_seq"]},
        headers=tenant.auth("operator"),
    ).json()["items"]
    seqs = [e["seq"] for e in page["items"] + rest]
    assert seqs == sorted(seqs, reverse=True)
    assert len(set(seqs)) == len(seqs)
    # tenant.created + one key per role + 3 runs; nothing of the other tenant.
    assert sum(e["action"] == "run.created" for e in page["items"] + rest) == 3
    assert client.get("/v1/audit", headers=tenant.auth("caller")).status_code == 403


def test_bindings_are_managed_within_the_admins_rights_and_audited(
    client: TestClient, tenant: TenantKeys, other_tenant: TenantKeys
) -> None:
    admin = tenant.auth("admin")
    created = client.post(
        "/v1/bindings",
        json={"subject_type": "group", "subject": "support-team", "roles": ["reviewer"]},
        headers=admin,
    )
    assert created.status_code == 201, created.text
    binding = created.json()
    assert binding["created_by"] == f"key:{tenant.key_ids['admin']}"
    listed = client.get("/v1/bindings", headers=admin).json()["items"]
    assert [b["id"] for b in listed] == [binding["id"]]
    # Nobody else sees or removes it; escalation and duplicates are refused.
    assert client.get("/v1/bindings", headers=other_tenant.auth("admin")).json()["items"] == []
    gone = client.delete(f"/v1/bindings/{binding['id']}", headers=other_tenant.auth("admin"))
    assert gone.status_code == 404
    escalate = client.post(
        "/v1/bindings",
        json={"subject_type": "user", "subject": "mallory", "roles": ["platform-admin"]},
        headers=admin,
    )
    assert escalate.status_code == 403
    again = client.post(
        "/v1/bindings",
        json={"subject_type": "group", "subject": "support-team", "roles": ["caller"]},
        headers=admin,
    )
    assert again.status_code == 409
    operator = client.get("/v1/bindings", headers=tenant.auth("operator"))
    assert operator.status_code == 403
    deleted = client.delete(f"/v1/bindings/{binding['id']}", headers=admin)
    assert deleted.status_code == 200
    assert client.get("/v1/bindings", headers=admin).json()["items"] == []
    (create_event,) = audit_events(client, tenant, "binding.created")
    (delete_event,) = audit_events(client, tenant, "binding.deleted")
    assert create_event["data"]["before"] is None
    assert create_event["data"]["after"]["subject"] == "support-team"
    assert delete_event["data"]["before"]["roles"] == ["reviewer"]
    assert delete_event["data"]["after"] is None


def test_ids_that_can_never_exist_are_a_422_not_a_server_error(
    client: TestClient, tenant: TenantKeys
) -> None:
    for method, path in (
        ("GET", "/v1/keys/%00"),
        ("DELETE", "/v1/keys/a%00"),
        ("POST", "/v1/keys/a%00/rotate"),
        ("DELETE", "/v1/bindings/%00"),
        ("GET", "/v1/tenants/a%00"),
        ("PATCH", "/v1/tenants/a%00"),
    ):
        kwargs: dict[str, Any] = {"json": {}} if method in {"POST", "PATCH"} else {}
        response = client.request(method, path, headers=tenant.auth("platform-admin"), **kwargs)
        assert response.status_code == 422, (method, path, response.text)
        assert response.headers["content-type"] == "application/problem+json"


def test_an_admin_cannot_take_away_rights_it_does_not_hold(
    client: TestClient, tenant: TenantKeys
) -> None:
    admin = tenant.auth("admin")
    revoke = client.delete(f"/v1/keys/{tenant.key_ids['platform-admin']}", headers=admin)
    assert revoke.status_code == 403
    assert client.get("/v1/tenants", headers=tenant.auth("platform-admin")).status_code == 200
    binding = client.post(
        "/v1/bindings",
        json={"subject_type": "user", "subject": "root", "roles": ["platform-admin"]},
        headers=tenant.auth("platform-admin"),
    ).json()
    assert client.delete(f"/v1/bindings/{binding['id']}", headers=admin).status_code == 403
    assert (
        client.delete(
            f"/v1/bindings/{binding['id']}", headers=tenant.auth("platform-admin")
        ).status_code
        == 200
    )
    # Everyone's implicit group may always be named.
    everyone = client.post(
        "/v1/keys", json={"name": "pub", "roles": ["caller"], "groups": ["everyone"]}, headers=admin
    )
    assert everyone.status_code == 201, everyone.text
