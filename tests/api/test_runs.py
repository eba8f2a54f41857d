"""Running tasks over HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid

from fastapi.testclient import TestClient

from tests.conftest import TINY_LABELS, TenantKeys

RUNS = "/v1/tasks/triage/runs"


def run(
    client: TestClient, tenant: TenantKeys, text: str, *, role: str = "caller", task: str = "triage"
) -> dict:
    response = client.post(
        f"/v1/tasks/{task}/runs", json={"input": {"text": text}}, headers=tenant.auth(role)
    )
    assert response.status_code == 201, response.text
    return response.json()


def test_run_returns_a_label_with_confidence_and_is_stored(
    client: TestClient, tenant: TenantKeys
) -> None:
    response = client.post(
        RUNS, json={"input": {"text": "I am still waiting on my card"}}, headers=tenant.auth()
    )
    assert response.status_code == 201
    body = response.json()
    assert body["task"] == "triage"
    assert body["version"] == 1
    assert body["output"]["label"] == "card_arrival"
    assert 0.0 <= body["output"]["confidence"] <= 1.0
    assert body["status"] == "ok"
    assert len(body["artifact"]) == 64
    assert body["latency_ms"] >= body["model_latency_ms"] > 0
    assert response.headers["location"].endswith(f"/v1/runs/{body['id']}")
    assert response.headers["x-request-id"] == body["request_id"]

    stored = client.get(f"/v1/runs/{body['id']}", headers=tenant.auth())
    assert stored.status_code == 200
    assert stored.json()["output"] == body["output"]
    assert stored.json()["input"] == {"text": "I am still waiting on my card"}


def test_labels_come_from_the_task_label_set(client: TestClient, tenant: TenantKeys) -> None:
    texts = [
        "what is the exchange rate for euros",
        "my top up did not work",
        "my pin is blocked",
        "I lost my card",
    ]
    labels = [run(client, tenant, text)["output"]["label"] for text in texts]
    assert set(labels) <= set(TINY_LABELS)
    assert labels == ["exchange_rate", "top_up_failed", "pin_blocked", "lost_or_stolen_card"]


def test_confidence_under_review_threshold_gives_needs_review(
    client: TestClient, tenant: TenantKeys
) -> None:
    body = run(client, tenant, "something vague about my account", task="triage-strict")
    assert body["status"] == "needs_review"
    assert body["output"]["confidence"] < 0.999
    listed = client.get("/v1/runs", params={"status": "needs_review"}, headers=tenant.auth())
    assert body["id"] in [item["id"] for item in listed.json()["items"]]


def test_list_runs_paginates_without_gaps_or_duplicates(
    client: TestClient, tenant: TenantKeys
) -> None:
    created = [run(client, tenant, f"card not arrived yet, day {i}")["id"] for i in range(7)]
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = client.get("/v1/runs", params=params, headers=tenant.auth("operator")).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(created))


def test_list_runs_filters_by_task(client: TestClient, tenant: TenantKeys) -> None:
    run(client, tenant, "card arrival?", task="triage")
    strict = run(client, tenant, "card arrival?", task="triage-strict")
    page = client.get("/v1/runs", params={"task": "triage-strict"}, headers=tenant.auth()).json()
    assert [item["id"] for item in page["items"]] == [strict["id"]]


def test_caller_sees_only_its_own_runs_but_operator_sees_all(
    client: TestClient, tenant: TenantKeys
) -> None:
    mine = run(client, tenant, "where is my card", role="caller")
    operators = run(client, tenant, "where is my card", role="operator")
    assert client.get(f"/v1/runs/{operators['id']}", headers=tenant.auth()).status_code == 404
    listed = client.get("/v1/runs", headers=tenant.auth()).json()["items"]
    assert [item["id"] for item in listed] == [mine["id"]]
    everything = client.get("/v1/runs", headers=tenant.auth("operator")).json()["items"]
    assert {mine["id"], operators["id"]} <= {item["id"] for item in everything}
    reviewer = client.get(f"/v1/runs/{mine['id']}", headers=tenant.auth("reviewer"))
    assert reviewer.status_code == 200


def test_another_tenants_run_is_404_identical_to_a_random_id(
    client: TestClient, tenant: TenantKeys, other_tenant: TenantKeys
) -> None:
    theirs = run(client, other_tenant, "my card has not arrived")["id"]
    random_id = str(uuid.uuid4())
    foreign = client.get(f"/v1/runs/{theirs}", headers=tenant.auth("admin"))
    missing = client.get(f"/v1/runs/{random_id}", headers=tenant.auth("admin"))
    assert foreign.status_code == missing.status_code == 404

    def shape(response, run_id):  # type: ignore[no-untyped-def]
        body = response.json()
        body.pop("request_id")
        return {k: str(v).replace(run_id, "ID") for k, v in body.items()}

    assert shape(foreign, theirs) == shape(missing, random_id)
    listed = client.get("/v1/runs", headers=tenant.auth("admin")).json()["items"]
    assert theirs not in [item["id"] for item in listed]


def test_unknown_task_is_404_problem(client: TestClient, tenant: TenantKeys) -> None:
    response = client.post(
        "/v1/tasks/no-such-task/runs", json={"input": {"text": "x"}}, headers=tenant.auth()
    )
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"].endswith("/not-found")


def test_tasks_list_and_detail_show_typed_schemas(client: TestClient, tenant: TenantKeys) -> None:
    tasks = client.get("/v1/tasks", headers=tenant.auth("reviewer")).json()
    assert {t["name"] for t in tasks} == {"triage", "triage-strict", "ask"}
    assert all(t["ready"] for t in tasks)
    detail = client.get("/v1/tasks/triage", headers=tenant.auth()).json()
    assert detail["input_schema"]["properties"]["text"]["maxLength"] == 500
    assert detail["output_schema"]["properties"]["label"]["enum"] == TINY_LABELS
    assert detail["spec"]["policy"]["review_below"] == 0.2
    assert client.get("/v1/tasks/nope", headers=tenant.auth()).status_code == 404


def test_openapi_shows_each_tasks_own_input_and_output(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    operation = document["paths"]["/v1/tasks/triage/runs"]["post"]
    request_ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schemas = document["components"]["schemas"]
    request_schema = schemas[request_ref.rsplit("/", 1)[1]]
    input_ref = request_schema["properties"]["input"]["$ref"].rsplit("/", 1)[1]
    assert schemas[input_ref]["properties"]["text"]["type"] == "string"
    response_ref = operation["responses"]["201"]["content"]["application/json"]["schema"]["$ref"]
    output = schemas[response_ref.rsplit("/", 1)[1]]["properties"]["output"]
    output_ref = next(o["$ref"] for o in output["anyOf"] if "$ref" in o).rsplit("/", 1)[1]
    assert schemas[output_ref]["properties"]["label"]["enum"] == TINY_LABELS
    assert "/v1/tasks/triage-strict/runs" in document["paths"]


def test_a_review_label_always_goes_to_review(client: TestClient, tenant: TenantKeys) -> None:
    body = run(client, tenant, "my pin is blocked, please unblock it")
    assert body["output"]["label"] == "pin_blocked"
    assert body["status"] == "needs_review"
