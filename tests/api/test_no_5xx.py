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
