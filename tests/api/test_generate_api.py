"""Generate tasks over HTTP against the real llama.cpp server: stored runs with tokens and
cost, structured output, SSE streaming, provider failures and the unconfigured case."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from shipyard.api.app import create_app
from shipyard.bootstrap import Container
from tests.conftest import TenantKeys, new_tenant
from tests.llm_project import PROVIDER, llm_container, write_generate_project
from tests.providers.llm.conftest import MODEL, llama_url  # noqa: F401  # fixture
from tests.providers.llm.fault_proxy import Fault, FaultProxy

pytestmark = pytest.mark.llm


@pytest.fixture(scope="module")
def served(llama_url: str) -> Iterator[FaultProxy]:  # noqa: F811
    proxy = FaultProxy(llama_url)
    yield proxy
    proxy.close()


@pytest.fixture(scope="module")
def container(served: FaultProxy, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Container]:
    project = write_generate_project(tmp_path_factory.mktemp("api-gen-project"))
    found = llm_container(project, tmp_path_factory.mktemp("api-gen-state"), served.url)
    yield found
    found.close()


@pytest.fixture(scope="module")
def client(container: Container) -> Iterator[TestClient]:
    with TestClient(create_app(container), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def keys(container: Container) -> TenantKeys:
    return new_tenant(container)


def parse_sse(text: str) -> list[tuple[str, dict]]:
    events = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((lines["event"], json.loads(lines["data"])))
    return events


def test_generate_run_is_stored_with_tokens_and_cost(client: TestClient, keys: TenantKeys) -> None:
    response = client.post(
        "/v1/tasks/draft-reply/runs", json={"input": {"text": "Hi!"}}, headers=keys.auth()
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "ok"
    assert body["output"]["text"]
    assert body["prompt_tokens"] > 0
    assert body["completion_tokens"] > 0
    assert body["cost"] > 0
    assert body["model"] == f"{PROVIDER}/{MODEL}"
    stored = client.get(f"/v1/runs/{body['id']}", headers=keys.auth()).json()
    assert (stored["prompt_tokens"], stored["cost"]) == (body["prompt_tokens"], body["cost"])


def test_structured_generate_returns_schema_valid_output(
    client: TestClient, keys: TenantKeys
) -> None:
    response = client.post(
        "/v1/tasks/sentiment/runs",
        json={"input": {"text": "This is terrible, I want a refund"}},
        headers=keys.auth(),
    )
    assert response.status_code == 201, response.text
    assert response.json()["output"]["sentiment"] in {"positive", "negative", "neutral"}


def test_stream_sends_deltas_then_the_stored_run(client: TestClient, keys: TenantKeys) -> None:
    response = client.post(
        "/v1/tasks/draft-reply/runs:stream",
        json={"input": {"text": "Thank you!"}},
        headers=keys.auth(),
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    events = parse_sse(response.text)
    deltas = [data["text"] for name, data in events if name == "delta"]
    assert deltas
    name, run = events[-1]
    assert name == "run"
    assert run["status"] == "ok"
    assert run["output"]["text"] == "".join(deltas)
    assert run["completion_tokens"] > 0
    assert run["cost"] > 0
    assert "streamed" in run["flags"]
    stored = client.get(f"/v1/runs/{run['id']}", headers=keys.auth()).json()
    assert stored["completion_tokens"] == run["completion_tokens"]


def test_typed_generate_tasks_have_no_stream_route(client: TestClient, keys: TenantKeys) -> None:
    response = client.post(
        "/v1/tasks/sentiment/runs:stream", json={"input": {"text": "ok"}}, headers=keys.auth()
    )
    assert response.status_code in (404, 405)


def test_provider_outage_is_a_503_and_a_failed_run(
    client: TestClient, keys: TenantKeys, served: FaultProxy
) -> None:
    served.push(Fault.error(500))
    response = client.post(
        "/v1/tasks/draft-reply/runs", json={"input": {"text": "Hi"}}, headers=keys.auth()
    )
    assert response.status_code == 503
    problem = response.json()
    assert problem["type"].endswith("/provider-unavailable")
    assert "stored as failed" in problem["detail"]
    listed = client.get("/v1/runs", params={"status": "failed"}, headers=keys.auth("admin"))
    assert len(listed.json()["items"]) == 1


def test_no_provider_configured_is_a_clear_503(tmp_path: Path) -> None:
    project = write_generate_project(tmp_path / "project")
    bare = llm_container(project, tmp_path / "state", None)
    keys = new_tenant(bare)
    try:
        with TestClient(create_app(bare), raise_server_exceptions=False) as test_client:
            for task in ("demo-reply", "draft-reply"):
                response = test_client.post(
                    f"/v1/tasks/{task}/runs", json={"input": {"text": "hi"}}, headers=keys.auth()
                )
                assert response.status_code == 503, response.text
                detail = response.json()["detail"]
                assert "configure SHIPYARD_PROVIDERS" in detail
                assert "SHIPYARD_LOCAL_LLM=true" in detail
    finally:
        bare.close()


def test_input_the_model_refuses_is_a_422_naming_the_input(
    client: TestClient, keys: TenantKeys, served: FaultProxy
) -> None:
    served.push(Fault.error(400))
    response = client.post(
        "/v1/tasks/draft-reply/runs", json={"input": {"text": "Hi"}}, headers=keys.auth()
    )
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["errors"][0]["field"] == "input"
    assert "stored as failed" in problem["detail"]
