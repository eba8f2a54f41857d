"""SHIPYARD_PUBLIC_API_DOCS=false: the OpenAPI document (every task, its fields) is for callers
with a key only, and the HTML docs are off. The default serves them to anyone."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from shipyard.api.app import create_app
from shipyard.bootstrap import Container, build
from tests.conftest import new_tenant


@pytest.fixture(scope="module")
def private_client(trained_container: Container) -> Iterator[tuple[TestClient, Container]]:
    container = build(trained_container.settings.model_copy(update={"public_api_docs": False}))
    app = create_app(container, load_models=False, run_jobs=False)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, container
    container.close()


def test_private_docs_need_a_key(private_client: tuple[TestClient, Container]) -> None:
    client, container = private_client
    anonymous = client.get("/openapi.json")
    assert anonymous.status_code == 401
    assert anonymous.headers["content-type"] == "application/problem+json"
    assert "triage" not in anonymous.text
    keys = new_tenant(container)
    for role in ("caller", "admin"):
        shown = client.get("/openapi.json", headers=keys.auth(role))
        assert shown.status_code == 200, shown.text
        assert "/v1/tasks/triage/runs" in shown.json()["paths"]
    assert client.get("/openapi.json", headers={"Authorization": "Bearer nope"}).status_code == 401
    for page in ("/docs", "/redoc"):
        assert client.get(page).status_code == 404


def test_public_docs_are_the_default(client: TestClient) -> None:
    assert client.get("/openapi.json").status_code == 200
    assert client.get("/docs").status_code == 200
