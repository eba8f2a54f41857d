"""Property: nothing a client sends to the run and list endpoints causes a 5xx."""

from __future__ import annotations

from urllib.parse import quote

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import TenantKeys

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
bodies = (
    json_values
    | st.fixed_dictionaries({"input": json_values})
    | st.fixed_dictionaries({"input": st.fixed_dictionaries({"text": st.text(max_size=600)})})
)
FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@FUZZ
@given(body=bodies)
def test_any_json_body_gets_a_non_5xx_answer(
    client: TestClient, tenant: TenantKeys, body: object
) -> None:
    response = client.post("/v1/tasks/triage/runs", json=body, headers=tenant.auth())
    assert response.status_code < 500, response.text
    assert response.status_code in (201, 422)


@FUZZ
@given(raw=st.binary(max_size=300))
def test_any_raw_body_gets_a_non_5xx_answer(
    client: TestClient, tenant: TenantKeys, raw: bytes
) -> None:
    response = client.post(
        "/v1/tasks/triage/runs",
        content=raw,
        headers={**tenant.auth(), "content-type": "application/json"},
    )
    assert response.status_code < 500, response.text


@FUZZ
@given(
    params=st.dictionaries(
        st.sampled_from(["task", "status", "limit", "cursor", "created_after", "created_before"]),
        st.text(max_size=30),
        max_size=4,
    )
)
def test_any_list_query_gets_a_non_5xx_answer(
    client: TestClient, tenant: TenantKeys, params: dict[str, str]
) -> None:
    response = client.get("/v1/runs", params=params, headers=tenant.auth("operator"))
    assert response.status_code in (200, 422), response.text


PRINTABLE = st.characters(min_codepoint=0x20, max_codepoint=0x7E)


@FUZZ
@given(token=st.text(PRINTABLE, max_size=80), run_id=st.text(min_size=1, max_size=40))
def test_any_token_and_run_id_get_a_non_5xx_answer(
    client: TestClient, token: str, run_id: str
) -> None:
    response = client.get(
        f"/v1/runs/{quote(run_id, safe='')}", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code in (401, 404), response.text


document_bodies = json_values | st.fixed_dictionaries(
    {
        "documents": st.lists(
            st.fixed_dictionaries(
                {"source": st.text(max_size=20), "text": st.text(max_size=200)},
                optional={
                    "groups": st.lists(st.text(max_size=12), max_size=3),
                    "media_type": st.sampled_from(["text/plain", "text/html", "text/markdown"]),
                    "metadata": json_values,
                },
            ),
            max_size=3,
        )
    }
)


@FUZZ
@given(body=document_bodies)
def test_any_document_upload_gets_a_non_5xx_answer(
    client: TestClient, tenant: TenantKeys, body: object
) -> None:
    client.post("/v1/collections", json={"name": "fuzz"}, headers=tenant.auth("operator"))
    response = client.post(
        "/v1/collections/fuzz/documents", json=body, headers=tenant.auth("operator")
    )
    assert response.status_code < 500, response.text
    assert response.status_code in (202, 422)


@FUZZ
@given(body=json_values | st.fixed_dictionaries({"query": st.text(max_size=300)}))
def test_any_search_gets_a_non_5xx_answer(
    client: TestClient, tenant: TenantKeys, body: object
) -> None:
    client.post("/v1/collections", json={"name": "fuzz"}, headers=tenant.auth("operator"))
    response = client.post("/v1/collections/fuzz/search", json=body, headers=tenant.auth())
    assert response.status_code in (200, 422), response.text


@FUZZ
@given(name=st.text(max_size=40), document=st.text(max_size=40))
def test_any_collection_and_document_path_gets_a_non_5xx_answer(
    client: TestClient, tenant: TenantKeys, name: str, document: str
) -> None:
    path = f"/v1/collections/{quote(name, safe='')}/documents/{quote(document, safe='')}"
    for method in ("GET", "DELETE"):
        response = client.request(method, path, headers=tenant.auth("operator"))
        assert response.status_code < 500, response.text
