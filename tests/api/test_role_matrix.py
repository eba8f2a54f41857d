"""The role x operation matrix, exhaustively: every route of the API with a key of every role.

Each route names the operation it needs. A role without it gets 403 problem+json (never a
404 that leaks nothing useful, never a 2xx); a role with it is never refused (401/403) and never
meets a 5xx. A route added without an entry here fails ``test_every_route_is_in_the_matrix``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient

from shipyard.access.roles import PERMISSIONS, Operation, Role
from shipyard.bootstrap import Container
from tests.conftest import TenantKeys, new_tenant

Call = tuple[str, str, dict[str, Any]]  # method, url, request kwargs


@dataclass
class World:
    """Objects of one tenant the requests refer to (existing ids, so a 404 is never the
    answer a role check could hide behind)."""

    client: TestClient
    container: Container
    tenant: TenantKeys
    run_id: str
    collection: str
    document_id: str
    job_id: str

    def admin(self) -> dict[str, str]:
        return self.tenant.auth("admin")

    def fresh_collection(self) -> str:
        name = f"c-{uuid.uuid4().hex[:10]}"
        response = self.client.post("/v1/collections", json={"name": name}, headers=self.admin())
        assert response.status_code == 201, response.text
        return name

    def fresh_document(self) -> str:
        response = self.client.post(
            f"/v1/collections/{self.collection}/documents",
            json={"documents": [{"source": f"{uuid.uuid4().hex}.txt", "text": "Refunds."}]},
            headers=self.admin(),
        )
        assert response.status_code == 202, response.text
        document_id: str = response.json()["documents"][0]["document_id"]
        return document_id

    def fresh_binding(self) -> str:
        binding = self.container.bindings.create_binding(
            self.tenant.slug,
            subject_type="user",
            subject=uuid.uuid4().hex,
            roles=frozenset({Role.CALLER}),
            groups=frozenset(),
            actor="tests",
        )
        return binding.id

    def fresh_key(self) -> str:
        key, _token = self.container.access.create_key(
            self.tenant.slug,
            name="throwaway",
            roles=frozenset({Role.CALLER}),
            expires_at=None,
            actor="tests",
        )
        return key.id


@dataclass(frozen=True)
class Entry:
    operation: Operation
    request: Callable[[World], Call]
    # Run routes also obey the task's own policy.roles (caller, operator, admin by default).
    task_policy: bool = False


def _get(url: str) -> Callable[[World], Call]:
    return lambda world: ("GET", url.format(w=world), {})


RUN_BODY = {"input": {"text": "my card has not arrived"}}
MATRIX: dict[tuple[str, str], Entry] = {
    ("GET", "/v1/tasks"): Entry(Operation.TASK_READ, _get("/v1/tasks")),
    ("GET", "/v1/tasks/{task}"): Entry(Operation.TASK_READ, _get("/v1/tasks/triage")),
    ("GET", "/v1/tasks/{task}/evaluations"): Entry(
        Operation.TASK_READ, _get("/v1/tasks/triage/evaluations")
    ),
    **{
        ("POST", f"/v1/tasks/{task}/runs"): Entry(
            Operation.TASK_RUN,
            lambda world, task=task, body=body: (  # type: ignore[misc]
                "POST",
                f"/v1/tasks/{task}/runs",
                {"json": {"input": body}},
            ),
            task_policy=True,
        )
        for task, body in (
            ("triage", {"text": "my card has not arrived"}),
            ("triage-strict", {"text": "my card has not arrived"}),
            ("ask", {"question": "How long do refunds take?"}),
        )
    },
    ("GET", "/v1/runs"): Entry(Operation.RUN_READ_OWN, _get("/v1/runs")),
    ("GET", "/v1/runs/{run_id}"): Entry(Operation.RUN_READ_OWN, _get("/v1/runs/{w.run_id}")),
    ("GET", "/v1/collections"): Entry(Operation.KNOWLEDGE_READ, _get("/v1/collections")),
    ("POST", "/v1/collections"): Entry(
        Operation.KNOWLEDGE_WRITE,
        lambda world: ("POST", "/v1/collections", {"json": {"name": f"c-{uuid.uuid4().hex[:8]}"}}),
    ),
    ("GET", "/v1/collections/{collection}"): Entry(
        Operation.KNOWLEDGE_READ, _get("/v1/collections/{w.collection}")
    ),
    ("PATCH", "/v1/collections/{collection}"): Entry(
        Operation.KNOWLEDGE_WRITE,
        lambda world: (
            "PATCH",
            f"/v1/collections/{world.collection}",
            {"json": {"retention_days": 30}},
        ),
    ),
    ("DELETE", "/v1/collections/{collection}"): Entry(
        Operation.KNOWLEDGE_WRITE,
        lambda world: ("DELETE", f"/v1/collections/{world.fresh_collection()}", {}),
    ),
    ("POST", "/v1/collections/{collection}/documents"): Entry(
        Operation.KNOWLEDGE_WRITE,
        lambda world: (
            "POST",
            f"/v1/collections/{world.collection}/documents",
            {"json": {"documents": [{"source": "m.txt", "text": "Matrix."}]}},
        ),
    ),
    ("GET", "/v1/collections/{collection}/documents"): Entry(
        Operation.KNOWLEDGE_READ, _get("/v1/collections/{w.collection}/documents")
    ),
    ("GET", "/v1/collections/{collection}/documents/{document_id}"): Entry(
        Operation.KNOWLEDGE_READ,
        _get("/v1/collections/{w.collection}/documents/{w.document_id}"),
    ),
    ("PATCH", "/v1/collections/{collection}/documents/{document_id}"): Entry(
        Operation.KNOWLEDGE_WRITE,
        lambda world: (
            "PATCH",
            f"/v1/collections/{world.collection}/documents/{world.document_id}",
            {"json": {"groups": ["everyone"]}},
        ),
    ),
    ("DELETE", "/v1/collections/{collection}/documents/{document_id}"): Entry(
        Operation.KNOWLEDGE_WRITE,
        lambda world: (
            "DELETE",
            f"/v1/collections/{world.collection}/documents/{world.fresh_document()}",
            {},
        ),
    ),
    ("POST", "/v1/collections/{collection}/search"): Entry(
        Operation.KNOWLEDGE_READ,
        lambda world: (
            "POST",
            f"/v1/collections/{world.collection}/search",
            {"json": {"query": "refunds"}},
        ),
    ),
    ("GET", "/v1/jobs"): Entry(Operation.JOB_READ, _get("/v1/jobs")),
    ("GET", "/v1/jobs/{job_id}"): Entry(Operation.JOB_READ, _get("/v1/jobs/{w.job_id}")),
    ("GET", "/v1/tenants"): Entry(Operation.TENANT_MANAGE, _get("/v1/tenants")),
    ("POST", "/v1/tenants"): Entry(
        Operation.TENANT_MANAGE,
        lambda world: ("POST", "/v1/tenants", {"json": {"slug": f"m-{uuid.uuid4().hex[:8]}"}}),
    ),
    ("GET", "/v1/tenants/{slug}"): Entry(
        Operation.TENANT_MANAGE, _get("/v1/tenants/{w.tenant.slug}")
    ),
    ("PATCH", "/v1/tenants/{slug}"): Entry(
        Operation.TENANT_MANAGE,
        lambda world: ("PATCH", f"/v1/tenants/{world.tenant.slug}", {"json": {"name": "M"}}),
    ),
    ("GET", "/v1/keys"): Entry(Operation.KEY_MANAGE, _get("/v1/keys")),
    ("POST", "/v1/keys"): Entry(
        Operation.KEY_MANAGE,
        lambda world: ("POST", "/v1/keys", {"json": {"name": "m", "roles": ["caller"]}}),
    ),
    ("GET", "/v1/keys/{key_id}"): Entry(
        Operation.KEY_MANAGE, _get("/v1/keys/{w.tenant.key_ids[caller]}")
    ),
    ("DELETE", "/v1/keys/{key_id}"): Entry(
        Operation.KEY_MANAGE,
        lambda world: ("DELETE", f"/v1/keys/{world.fresh_key()}", {}),
    ),
    ("POST", "/v1/keys/{key_id}/rotate"): Entry(
        Operation.KEY_MANAGE,
        lambda world: ("POST", f"/v1/keys/{world.fresh_key()}/rotate", {"json": {}}),
    ),
    ("GET", "/v1/bindings"): Entry(Operation.BINDING_MANAGE, _get("/v1/bindings")),
    ("POST", "/v1/bindings"): Entry(
        Operation.BINDING_MANAGE,
        lambda world: (
            "POST",
            "/v1/bindings",
            {"json": {"subject_type": "user", "subject": uuid.uuid4().hex, "roles": ["caller"]}},
        ),
    ),
    ("DELETE", "/v1/bindings/{binding_id}"): Entry(
        Operation.BINDING_MANAGE,
        lambda world: ("DELETE", f"/v1/bindings/{world.fresh_binding()}", {}),
    ),
    ("GET", "/v1/audit"): Entry(Operation.AUDIT_READ, _get("/v1/audit")),
}
PUBLIC = {("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics")}


@pytest.fixture(scope="module")
def world(client: TestClient, trained_container: Container) -> World:
    tenant = new_tenant(trained_container)
    admin = tenant.auth("admin")
    run = client.post("/v1/tasks/triage/runs", json=RUN_BODY, headers=tenant.auth("operator"))
    assert run.status_code == 201, run.text
    collection = f"matrix-{uuid.uuid4().hex[:6]}"
    assert client.post("/v1/collections", json={"name": collection}, headers=admin).is_success
    ingest = client.post(
        f"/v1/collections/{collection}/documents",
        json={"documents": [{"source": "a.txt", "text": "Refunds take five days."}]},
        headers=admin,
    )
    assert ingest.status_code == 202, ingest.text
    return World(
        client,
        trained_container,
        tenant,
        run_id=run.json()["id"],
        collection=collection,
        document_id=ingest.json()["documents"][0]["document_id"],
        job_id=ingest.json()["job"]["id"],
    )


def documented_operations(client: TestClient) -> set[tuple[str, str]]:
    paths: dict[str, dict[str, Any]] = client.get("/openapi.json").json()["paths"]
    return {(method.upper(), path) for path, ops in paths.items() for method in ops}


def test_every_route_is_in_the_matrix(client: TestClient) -> None:
    assert documented_operations(client) == set(MATRIX) | PUBLIC


@pytest.mark.parametrize("route", sorted(MATRIX), ids=lambda r: f"{r[0]} {r[1]}")
def test_each_role_gets_exactly_what_the_matrix_grants(
    world: World, route: tuple[str, str]
) -> None:
    entry = MATRIX[route]
    spec_roles = {"caller", "operator", "admin"}  # the tiny project's tasks: the default
    for role in Role:
        allowed = entry.operation in PERMISSIONS[role]
        if entry.task_policy:
            allowed = allowed and role.value in spec_roles
        method, url, kwargs = entry.request(world)
        response = world.client.request(method, url, headers=world.tenant.auth(role), **kwargs)
        where = f"{role.value} {method} {url}: {response.status_code} {response.text[:200]}"
        assert response.status_code < 500, where
        if allowed:
            assert response.status_code not in (401, 403), where
        else:
            assert response.status_code == 403, where
            assert response.headers["content-type"] == "application/problem+json", where


def test_public_routes_need_no_key(client: TestClient) -> None:
    for method, path in sorted(PUBLIC):
        assert client.request(method, path).status_code != 401
