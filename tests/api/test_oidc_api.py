"""People signing in with OIDC bearer tokens, through the real app, on SQLite and PostgreSQL:
claims -> tenant, role bindings -> roles and access groups, own-runs visibility, tenant
isolation, disabled tenants, refusals as problem+json, JWKS rotation and the refetch limit,
and the audited, escalation-proof role binding service."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from shipyard.access.principal import Principal
from shipyard.access.roles import Role
from shipyard.api.app import create_app
from shipyard.bootstrap import Container, build
from shipyard.errors import (
    ConfigError,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    Unauthenticated,
)
from shipyard.settings import OidcSettings
from shipyard.storage.tables import AuditEvent, Run, Tenant
from tests.access.idp import AUDIENCE, ISSUER, FakeClock, Idp, JwksServer, hmac_token
from tests.access.idp import unsigned_token as unsigned
from tests.conftest import TenantKeys, new_tenant

RUNS = "/v1/tasks/triage/runs"
BODY = {"input": {"text": "my card has not arrived"}}


@pytest.fixture(scope="module")
def idp_server() -> Iterator[JwksServer]:
    with JwksServer(Idp()) as server:
        yield server


@pytest.fixture(scope="module")
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="module")
def oidc_container(
    trained_container: Container, idp_server: JwksServer, clock: FakeClock
) -> Iterator[Container]:
    """The trained container's database, models and secret, plus OIDC sign-in."""
    oidc = OidcSettings(issuer=ISSUER, audience=AUDIENCE, jwks_url=idp_server.url)
    container = build(trained_container.settings.model_copy(update={"oidc": oidc}))
    assert container.oidc is not None
    container.oidc.keys.clock = clock
    yield container
    container.close()


@pytest.fixture(scope="module")
def oidc_client(oidc_container: Container) -> Iterator[TestClient]:
    app = create_app(oidc_container, run_jobs=False)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def org(trained_container: Container) -> TenantKeys:
    return new_tenant(trained_container)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def bind(
    container: Container,
    tenant: str,
    subject: str,
    *roles: Role,
    subject_type: str = "user",
    groups: frozenset[str] = frozenset(),
) -> str:
    binding = container.bindings.create_binding(
        tenant,
        subject_type=subject_type,
        subject=subject,
        roles=frozenset(roles),
        groups=groups,
        actor="tests",
    )
    return binding.id


def audit_events(container: Container, subject_id: str) -> list[AuditEvent]:
    with container.sessions() as session:
        return list(
            session.execute(
                select(AuditEvent)
                .where(AuditEvent.subject_id == subject_id)
                .order_by(AuditEvent.seq)
            ).scalars()
        )


# -- claims -> principal -----------------------------------------------------------------


def test_a_user_binding_makes_a_caller_who_reads_only_own_runs(
    oidc_client: TestClient, oidc_container: Container, idp_server: JwksServer, org: TenantKeys
) -> None:
    idp = idp_server.idp
    bind(oidc_container, org.slug, "alice", Role.CALLER)
    bind(oidc_container, org.slug, "bob", Role.CALLER)
    alice = bearer(idp.token("alice", tenant=org.slug))
    bob = bearer(idp.token("bob", tenant=org.slug))

    created = oidc_client.post(RUNS, json=BODY, headers=alice)
    assert created.status_code == 201, created.text
    run_id = created.json()["id"]
    assert oidc_client.get(f"/v1/runs/{run_id}", headers=alice).status_code == 200
    assert oidc_client.get(f"/v1/runs/{run_id}", headers=bob).status_code == 404
    assert oidc_client.get("/v1/runs", headers=bob).json()["items"] == []
    # A key's own runs stay its own too: the user id never equals a key id.
    key = org.auth("caller")
    assert oidc_client.get(f"/v1/runs/{run_id}", headers=key).status_code == 404

    with oidc_container.sessions() as session:
        run = session.get(Run, run_id)
    assert run is not None
    assert run.key_id is not None
    assert run.key_id.startswith("u_")
    assert len(run.key_id) == 26
    assert [event.actor for event in audit_events(oidc_container, run_id)] == ["user:alice"]


def test_roles_and_groups_are_the_union_of_user_and_group_bindings(
    oidc_container: Container, idp_server: JwksServer, org: TenantKeys
) -> None:
    idp = idp_server.idp
    bind(oidc_container, org.slug, "carol", Role.CALLER, groups=frozenset({"hr"}))
    bind(
        oidc_container,
        org.slug,
        "/support",
        Role.REVIEWER,
        subject_type="group",
        groups=frozenset({"support"}),
    )
    bind(oidc_container, org.slug, "/finance", Role.ADMIN, subject_type="group")
    token = idp.token("carol", tenant=org.slug, groups=["/support", "/unrelated"])
    principal = oidc_container.access.authenticate(token)
    assert principal.roles == {Role.CALLER, Role.REVIEWER}
    assert principal.groups == {"hr", "support"}
    assert (principal.tenant_slug, principal.subject, principal.actor) == (
        org.slug,
        "carol",
        "user:carol",
    )
    # Group membership alone is enough; the same group name as a user binding is not.
    dave = oidc_container.access.authenticate(idp.token("dave", tenant=org.slug, groups="/finance"))
    assert dave.roles == {Role.ADMIN}
    with pytest.raises(Unauthenticated, match="no role bindings"):
        oidc_container.access.authenticate(idp.token("/support", tenant=org.slug))


def test_a_reviewer_group_reads_every_run_of_its_tenant(
    oidc_client: TestClient, oidc_container: Container, idp_server: JwksServer, org: TenantKeys
) -> None:
    bind(oidc_container, org.slug, "reviewers", Role.REVIEWER, subject_type="group")
    run_id = oidc_client.post(RUNS, json=BODY, headers=org.auth("caller")).json()["id"]
    token = idp_server.idp.token("erin", tenant=org.slug, groups=["reviewers"])
    assert oidc_client.get(f"/v1/runs/{run_id}", headers=bearer(token)).status_code == 200
    assert oidc_client.post(RUNS, json=BODY, headers=bearer(token)).status_code == 403


def test_a_user_without_bindings_is_401(
    oidc_client: TestClient, idp_server: JwksServer, org: TenantKeys
) -> None:
    token = idp_server.idp.token("nobody", tenant=org.slug, groups=["strangers"])
    response = oidc_client.get("/v1/tasks", headers=bearer(token))
    assert response.status_code == 401
    assert response.json()["detail"] == "no role bindings for this user"


def test_a_token_for_one_tenant_cannot_see_another_tenants_run(
    oidc_client: TestClient,
    oidc_container: Container,
    idp_server: JwksServer,
    org: TenantKeys,
    other_tenant: TenantKeys,
) -> None:
    bind(oidc_container, org.slug, "frank", Role.OPERATOR)
    bind(oidc_container, other_tenant.slug, "gina", Role.OPERATOR)
    theirs = oidc_client.post(RUNS, json=BODY, headers=other_tenant.auth("caller")).json()["id"]
    frank = bearer(idp_server.idp.token("frank", tenant=org.slug))
    assert oidc_client.get(f"/v1/runs/{theirs}", headers=frank).status_code == 404
    # Frank's sub has no binding in the other tenant: naming it in the claim gets nothing.
    frank_there = bearer(idp_server.idp.token("frank", tenant=other_tenant.slug))
    assert oidc_client.get(f"/v1/runs/{theirs}", headers=frank_there).status_code == 401
    gina = bearer(idp_server.idp.token("gina", tenant=other_tenant.slug))
    assert oidc_client.get(f"/v1/runs/{theirs}", headers=gina).status_code == 200


def test_a_disabled_tenant_refuses_tokens_and_keys(
    oidc_client: TestClient, oidc_container: Container, idp_server: JwksServer, org: TenantKeys
) -> None:
    bind(oidc_container, org.slug, "hank", Role.CALLER)
    token = bearer(idp_server.idp.token("hank", tenant=org.slug))
    assert oidc_client.get("/v1/tasks", headers=token).status_code == 200
    assert oidc_client.get("/v1/tasks", headers=org.auth("caller")).status_code == 200
    with oidc_container.sessions.begin() as session:
        session.execute(
            update(Tenant).where(Tenant.slug == org.slug).values(disabled_at=datetime.now(UTC))
        )
    refused = oidc_client.get("/v1/tasks", headers=token)
    assert refused.status_code == 401
    unknown = bearer(idp_server.idp.token("hank", tenant="no-such-tenant"))
    assert (
        oidc_client.get("/v1/tasks", headers=unknown).json()["detail"] == (refused.json()["detail"])
    )
    key_refused = oidc_client.get("/v1/tasks", headers=org.auth("caller"))
    assert key_refused.status_code == 401
    assert "disabled" in key_refused.json()["detail"]


# -- refusals through the app ------------------------------------------------------------


def _bad_tokens(idp: Idp, tenant: str) -> dict[str, str]:
    now = int(time.time())
    claims = idp.claims("ivan", tenant=tenant)
    return {
        "alg none": unsigned({"alg": "none", "kid": "rsa-1"}, claims),
        "hs256 with the public key": hmac_token(idp.public_pem("rsa-1"), {"kid": "rsa-1"}, claims),
        "kty mismatch": idp.token("ivan", kid="rsa-1", signer="ec-1", tenant=tenant),
        "expired": idp.token("ivan", tenant=tenant, exp=now - 3600),
        "not yet valid": idp.token("ivan", tenant=tenant, nbf=now + 3600),
        "wrong issuer": idp.token("ivan", tenant=tenant, iss="https://evil.example.test"),
        "wrong audience": idp.token("ivan", tenant=tenant, aud="someone-else"),
        "unknown kid": idp.token("ivan", kid="nope", signer="rsa-1", tenant=tenant),
        "missing kid": idp.token("ivan", kid=None, signer="rsa-1", tenant=tenant),
        "malformed": "eyJhbGciOiJSUzI1NiJ9.not-json.sig",
        "forged": Idp().token("ivan", tenant=tenant),
    }


def test_every_refusal_is_a_401_problem_without_token_contents(
    oidc_client: TestClient,
    oidc_container: Container,
    idp_server: JwksServer,
    org: TenantKeys,
    caplog: pytest.LogCaptureFixture,
) -> None:
    bind(oidc_container, org.slug, "ivan", Role.ADMIN)
    good = bearer(idp_server.idp.token("ivan", tenant=org.slug))
    assert oidc_client.get("/v1/tasks", headers=good).status_code == 200
    caplog.set_level(logging.DEBUG)
    for name, token in _bad_tokens(idp_server.idp, org.slug).items():
        response = oidc_client.get("/v1/tasks", headers=bearer(token))
        assert response.status_code == 401, name
        assert response.headers["content-type"] == "application/problem+json", name
        assert response.headers["www-authenticate"] == "Bearer", name
        detail = response.json()["detail"]
        assert detail.startswith("invalid token: "), (name, detail)
        assert len(detail) < 80, (name, detail)
        for part in token.split("."):
            if len(part) > 8:
                assert part not in response.text, name
                assert part not in caplog.text, name


def test_a_jwt_without_oidc_configured_is_an_invalid_api_key(
    client: TestClient, org: TenantKeys
) -> None:
    token = Idp().token("alice", tenant=org.slug)
    response = client.get("/v1/tasks", headers=bearer(token))
    assert response.status_code == 401
    assert response.json()["detail"] == "invalid API key"


def test_key_rotation_at_the_idp_and_the_refetch_limit(
    oidc_client: TestClient,
    oidc_container: Container,
    idp_server: JwksServer,
    clock: FakeClock,
    org: TenantKeys,
) -> None:
    idp = idp_server.idp
    bind(oidc_container, org.slug, "judy", Role.CALLER)
    judy = bearer(idp.token("judy", tenant=org.slug))
    assert oidc_client.get("/v1/tasks", headers=judy).status_code == 200
    clock.advance(61)
    kid = f"rsa-{uuid.uuid4().hex[:6]}"
    idp.add_rsa(kid)  # the IdP rotates in a new key
    rotated = bearer(idp.token("judy", kid=kid, tenant=org.slug))
    before = idp_server.requests
    assert oidc_client.get("/v1/tasks", headers=rotated).status_code == 200
    assert idp_server.requests == before + 1
    for _ in range(10):  # random key ids within the limit: no further fetch
        junk = idp.token("judy", kid=uuid.uuid4().hex, signer=kid, tenant=org.slug)
        assert oidc_client.get("/v1/tasks", headers=bearer(junk)).status_code == 401
    assert idp_server.requests == before + 1
    assert oidc_client.get("/v1/tasks", headers=rotated).status_code == 200


# -- the role binding service ------------------------------------------------------------


def test_binding_create_list_delete_is_audited_with_before_and_after(
    oidc_container: Container, org: TenantKeys
) -> None:
    bindings = oidc_container.bindings
    binding = bindings.create_binding(
        org.slug,
        subject_type="group",
        subject="/ops",
        roles=frozenset({Role.OPERATOR}),
        groups=frozenset({"ops"}),
        actor="cli",
    )
    assert [b.id for b in bindings.bindings(org.slug)] == [binding.id]
    with pytest.raises(Conflict):
        bind(oidc_container, org.slug, "/ops", Role.CALLER, subject_type="group")
    bindings.delete_binding(org.slug, binding.id, actor="cli")
    assert bindings.bindings(org.slug) == []
    created, deleted = audit_events(oidc_container, binding.id)
    snapshot: dict[str, Any] = {
        "id": binding.id,
        "subject_type": "group",
        "subject": "/ops",
        "roles": ["operator"],
        "groups": ["ops"],
    }
    assert (created.action, created.actor, created.data) == (
        "binding.created",
        "cli",
        {"before": None, "after": snapshot},
    )
    assert (deleted.action, deleted.data) == (
        "binding.deleted",
        {"before": snapshot, "after": None},
    )
    assert created.tenant_id == deleted.tenant_id is not None
    assert oidc_container.audit.verify().ok


def test_another_tenants_binding_is_not_found(
    oidc_container: Container, org: TenantKeys, other_tenant: TenantKeys
) -> None:
    theirs = bind(oidc_container, other_tenant.slug, "kim", Role.CALLER)
    for binding_id in (theirs, str(uuid.uuid4()), "not-a-uuid"):
        with pytest.raises(NotFound):
            oidc_container.bindings.delete_binding(org.slug, binding_id, actor="cli")
    with pytest.raises(NotFound):
        oidc_container.bindings.bindings("no-such-tenant")
    assert len(oidc_container.bindings.bindings(other_tenant.slug)) == 1


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"subject_type": "robot"}, "subject_type"),
        ({"subject": ""}, "subject"),
        ({"subject": " alice"}, "subject"),
        ({"subject": "a\nb"}, "subject"),
        ({"subject": "x" * 201}, "subject"),
        ({"roles": frozenset(), "groups": frozenset()}, "roles"),
        ({"groups": frozenset({"bad group!"})}, "groups"),
    ],
)
def test_invalid_bindings_name_the_field(
    oidc_container: Container, org: TenantKeys, change: dict[str, Any], field: str
) -> None:
    values: dict[str, Any] = {
        "subject_type": "user",
        "subject": "alice",
        "roles": frozenset({Role.CALLER}),
        "groups": frozenset(),
        "actor": "cli",
        **change,
    }
    with pytest.raises(InvalidInput) as caught:
        oidc_container.bindings.create_binding(org.slug, **values)
    assert [problem.field for problem in caught.value.problems] == [field]


def test_a_granter_cannot_escalate(
    oidc_container: Container, idp_server: JwksServer, org: TenantKeys, other_tenant: TenantKeys
) -> None:
    bind(oidc_container, org.slug, "lee", Role.ADMIN, groups=frozenset({"hr"}))
    admin = oidc_container.access.authenticate(idp_server.idp.token("lee", tenant=org.slug))

    def grant(granter: Principal, roles: set[Role], groups: set[str], tenant: str = "") -> str:
        return oidc_container.bindings.create_binding(
            tenant or org.slug,
            subject_type="user",
            subject=f"u-{uuid.uuid4().hex[:8]}",
            roles=frozenset(roles),
            groups=frozenset(groups),
            actor=granter.actor,
            granter=granter,
        ).id

    with pytest.raises(Forbidden, match="platform-admin"):
        grant(admin, {Role.PLATFORM_ADMIN}, set())
    with pytest.raises(Forbidden, match="finance"):
        grant(admin, {Role.CALLER}, {"finance"})
    with pytest.raises(NotFound):
        grant(admin, {Role.CALLER}, set(), tenant=other_tenant.slug)
    operator = Principal(admin.tenant_id, org.slug, None, "op", frozenset({Role.OPERATOR}))
    with pytest.raises(Forbidden, match="binding:manage"):
        grant(operator, {Role.CALLER}, set())
    granted = grant(admin, {Role.OPERATOR, Role.CALLER}, {"hr"})
    assert [e.actor for e in audit_events(oidc_container, granted)] == ["user:lee"]


def test_an_unreadable_jwks_file_stops_the_app_from_starting(
    trained_container: Container, tmp_path: Path
) -> None:
    oidc = OidcSettings(issuer=ISSUER, audience=AUDIENCE, jwks_file=tmp_path / "missing.json")
    container = build(trained_container.settings.model_copy(update={"oidc": oidc}))
    with pytest.raises(ConfigError, match="jwks_file"):
        create_app(container, load_models=False, run_jobs=False)
