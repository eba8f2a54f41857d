"""Tenant isolation, enumerated: every route that takes the id of a tenant-owned object,
called by another tenant with a real id of ours, answers exactly as it does for a random id
(404, same problem body), and changes nothing.

The caller is the other tenant's platform admin, who holds every operation, so no 403 can
hide a leak. Tenants themselves (``/v1/tenants/{slug}``) are platform objects, managed across
tenants by design; tasks are the project's, shared by its tenants.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient

from shipyard.bootstrap import Container
from tests.conftest import TenantKeys, new_tenant

# Path parameters naming tenant-owned objects.
OWNED = {"run_id", "collection", "document_id", "job_id", "key_id", "binding_id"}
# Path parameters that are not tenant-owned (see the module docstring).
SHARED = {"task", "slug"}
SHARED_NAME = "iso-shared"  # a collection name both tenants have


def _valid_body(method: str, path: str) -> dict[str, Any] | None:
    if path.endswith("/search"):
        return {"query": "refunds"}
    if path.endswith("/documents") and method == "POST":
        return {"documents": [{"source": "x.txt", "text": "Hello."}]}
    if path.endswith("/rotate"):
        return {}
    if method == "PATCH" and "{document_id}" in path:
        return {"groups": ["everyone"]}
    if method == "PATCH" and path.endswith("{collection}"):
        return {"retention_days": 30}
    if method == "PATCH":
        return {}
    return None


def _comparable(response: Any, ids: dict[str, str]) -> dict[str, Any]:
    """The problem body with our ids replaced by their names (and the per-request id gone)."""
    text: str = response.text
    for name, value in ids.items():
        text = text.replace(value, f"<{name}>")
    body: dict[str, Any] = json.loads(text)
    body.pop("request_id", None)
    return body


def _ours(client: TestClient, owner: TenantKeys) -> dict[str, str]:
    admin = owner.auth("admin")
    run = client.post(
        "/v1/tasks/triage/runs", json={"input": {"text": "card"}}, headers=owner.auth("caller")
    )
    assert run.status_code == 201
    only_ours = f"iso-{uuid.uuid4().hex[:8]}"
    for name in (only_ours, SHARED_NAME):
        assert client.post("/v1/collections", json={"name": name}, headers=admin).is_success
    ingest = client.post(
        f"/v1/collections/{SHARED_NAME}/documents",
        json={"documents": [{"source": "ours.txt", "text": "Refunds take five days."}]},
        headers=admin,
    )
    assert ingest.status_code == 202
    return {
        "run_id": run.json()["id"],
        "collection": only_ours,
        "document_id": ingest.json()["documents"][0]["document_id"],
        "job_id": ingest.json()["job"]["id"],
        "key_id": owner.key_ids["caller"],
        "binding_id": client.post(
            "/v1/bindings",
            json={"subject_type": "group", "subject": "iso-team", "roles": ["caller"]},
            headers=admin,
        ).json()["id"],
    }


def _random() -> dict[str, str]:
    return {
        "run_id": str(uuid.uuid4()),
        "collection": f"iso-{uuid.uuid4().hex[:8]}",
        "document_id": str(uuid.uuid4()),
        "job_id": str(uuid.uuid4()),
        "key_id": uuid.uuid4().hex[:12],
        "binding_id": str(uuid.uuid4()),
    }


def _url(path: str, ids: dict[str, str]) -> str:
    url = path
    for name in OWNED:
        if "{" + name + "}" in url:
            # A document route names its collection too: use one the caller also has, so
            # only the document id is foreign.
            value = SHARED_NAME if name == "collection" and "{document_id}" in path else ids[name]
            url = url.replace("{" + name + "}", value)
    return url


@pytest.fixture
def intruder(client: TestClient, trained_container: Container) -> TenantKeys:
    other = new_tenant(trained_container)
    response = client.post(
        "/v1/collections", json={"name": SHARED_NAME}, headers=other.auth("admin")
    )
    assert response.status_code == 201
    return other


def test_every_route_with_another_tenants_id_is_404_like_a_random_id(
    client: TestClient, tenant: TenantKeys, intruder: TenantKeys
) -> None:
    ours = _ours(client, tenant)
    paths: dict[str, dict[str, Any]] = client.get("/openapi.json").json()["paths"]
    checked = []
    for path, operations in paths.items():
        names = {part[1:-1] for part in path.split("/") if part.startswith("{")}
        assert names <= OWNED | SHARED, f"{path}: classify its path parameters"
        for method, operation in operations.items():
            query_ids = {
                p["name"] for p in operation.get("parameters", []) if p["in"] == "query"
            } & OWNED
            assert not query_ids, f"{path} takes ids in its query: cover them here"
            if not names & OWNED:
                continue
            body = _valid_body(method.upper(), path)
            kwargs: dict[str, Any] = {"json": body} if body is not None else {}
            random = _random()
            theirs = client.request(
                method, _url(path, ours), headers=intruder.auth("platform-admin"), **kwargs
            )
            unknown = client.request(
                method, _url(path, random), headers=intruder.auth("platform-admin"), **kwargs
            )
            where = f"{method.upper()} {path}"
            assert theirs.status_code == unknown.status_code == 404, (
                where,
                theirs.text,
                unknown.text,
            )
            assert _comparable(theirs, ours) == _comparable(unknown, random), where
            assert theirs.headers["content-type"] == unknown.headers["content-type"]
            checked.append(where)
    assert len(checked) >= 12, checked  # runs, collections, documents, jobs, keys...

    # Nothing of ours changed: the run, the collection and the document are all still here.
    admin = tenant.auth("admin")
    assert client.get(f"/v1/runs/{ours['run_id']}", headers=admin).status_code == 200
    assert client.get(f"/v1/collections/{ours['collection']}", headers=admin).status_code == 200
    document = f"/v1/collections/{SHARED_NAME}/documents/{ours['document_id']}"
    assert client.get(document, headers=admin).status_code == 200
    key = client.get(f"/v1/keys/{ours['key_id']}", headers=admin).json()
    assert key["state"] == "active"
    bindings = client.get("/v1/bindings", headers=admin).json()["items"]
    assert [b["id"] for b in bindings] == [ours["binding_id"]]
