"""Schemathesis fuzzing of the whole API, in-process, against the app's own /openapi.json.

Every operation the app serves (the document is built from ``create_app`` on the tiny
project, so new routers are covered without listing them) gets generated valid and invalid
requests, with a valid tenant-admin key; each response must pass Schemathesis' checks: no
5xx, status code, content type, body and headers as documented, invalid input refused, valid
input accepted, and an operation that declares auth refuses the request without a key or with
a wrong one. A stateful run chains calls through the document's links (POST a run, then GET
it by id; POST a collection, then GET/DELETE it). Separate tests send every operation that
requires a key a missing or garbage one and expect 401 problem+json.

Bounded for CI: ``SHIPYARD_FUZZ_EXAMPLES`` generated cases per operation and generation mode
(default 20; document uploads get a fifth, since each starts an indexing job), derandomized
so a run is reproducible. ``tests/api/fuzz_report.py`` counts the cases. See docs/testing.md.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis import Case, CheckContext, Response
from schemathesis.specs.openapi.checks import positive_data_acceptance

from shipyard.access.roles import Role
from shipyard.api.app import create_app
from shipyard.bootstrap import Container, build
from shipyard.errors import Unauthenticated
from shipyard.settings import Settings
from tests.api.fuzz_report import FuzzTally
from tests.conftest import make_container, new_tenant, write_tiny_project

EXAMPLES = int(os.environ.get("SHIPYARD_FUZZ_EXAMPLES", "20"))
# Each accepted upload queues an indexing job (embedding work on the shared 2-core runner):
# fewer examples here, not none, so the operation stays fuzzed.
UPLOAD = "POST /v1/collections/{collection}/documents"
UPLOAD_EXAMPLES = max(2, EXAMPLES // 5)
STATEFUL_SCENARIOS = max(5, EXAMPLES // 2)
STATEFUL_STEPS = 6
HTTP_METHODS = {"get", "put", "post", "delete", "patch"}
# Operations anyone may call: probes and metrics. Everything under /v1/ must require a key.
PUBLIC_PATHS = {"/healthz", "/readyz", "/metrics"}


def _openapi_document() -> dict[str, Any]:
    """The document the app serves for the tiny project (no models or data needed)."""
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        container = build(
            Settings(
                project_dir=write_tiny_project(root / "project"),
                data_dir=root / "state",
                database_url=f"sqlite:///{root / 'openapi.db'}",
                secret_key="fuzz-secret-key-" + "x" * 32,
            )
        )
        try:
            return create_app(container, load_models=False, run_jobs=False).openapi()
        finally:
            container.close()


def _add_run_links(document: dict[str, Any]) -> dict[str, Any]:
    """Link each task's run to ``GET /v1/runs/{run_id}`` (Schemathesis infers the collection
    and document links from the schemas; the run's comes from the Location header only)."""
    for path, item in document["paths"].items():
        if path.startswith("/v1/tasks/") and path.endswith("/runs") and "post" in item:
            item["post"]["responses"]["201"]["links"] = {
                "GetRun": {
                    "operationRef": "#/paths/~1v1~1runs~1{run_id}/get",
                    "parameters": {"run_id": "$response.body#/id"},
                }
            }
    return document


DOCUMENT = _openapi_document()
CONFIG = schemathesis.Config.from_dict(
    {
        # allow-extra-parameters: off, since OpenAPI cannot forbid unknown query parameters and
        # the API ignores them, as HTTP APIs do (a false positive of negative_data_rejection).
        "generation": {
            "max-examples": EXAMPLES,
            "deterministic": True,
            "allow-extra-parameters": False,
        },
        "operations": [{"include-name": UPLOAD, "generation": {"max-examples": UPLOAD_EXAMPLES}}],
    }
)


class AppUnderTest:
    """The ASGI app the schema sends every request (and auth probe) to, in-process; the
    ``fuzz_app`` fixture points it at the app of the backend under test."""

    def __init__(self) -> None:
        self.app: FastAPI | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        assert self.app is not None, "use the fuzz_app fixture"
        await self.app(scope, receive, send)


APP = AppUnderTest()
schema = schemathesis.openapi.from_dict(_add_run_links(DOCUMENT), config=CONFIG)
schema.app = APP

# Rules the JSON Schema does not express, so schema-valid input may fairly be refused (422):
# (operation, field named in the problem's `errors`) -> why. Anything else refused with a
# schema-valid request still fails positive_data_acceptance.
SEMANTIC_RULES: dict[tuple[str, str], str] = {
    ("GET /v1/runs", "cursor"): "opaque paging token: only one the API issued means anything",
    (
        "PATCH /v1/collections/{collection}/documents/{document_id}",
        "groups",
    ): "access-group names (knowledge.groups.GROUP_RE, checked after trimming)",
    (UPLOAD, "groups"): "access-group names, comma-separated in a multipart field",
    (UPLOAD, "files[].groups"): "access-group names, comma-separated in a multipart field",
    (UPLOAD, "documents[].groups"): "access-group names (knowledge.groups.GROUP_RE)",
    (UPLOAD, "metadata"): "multipart metadata is JSON text in a string field",
    (UPLOAD, "files[].source"): "file names must be unique within one upload",
    (UPLOAD, "documents[].source"): "sources must be unique within one upload",
    ("POST /v1/tasks/ask/runs", "input.question"): "an answer task's question must not be blank",
    ("POST /v1/collections/{collection}/search", "query"): "a query must not be blank",
    ("POST /v1/keys", "name"): "labels are trimmed (str.strip), and blank ones refused",
    ("POST /v1/bindings", "subject"): "subjects are compared exactly: no outer spaces",
    (
        "POST /v1/bindings",
        "roles",
    ): "cross-field rule: roles and groups may not both be empty",
}
# Labels (key names, binding subjects, ...) refuse Unicode control and format characters
# (services.key_records.check_name), which JSON Schema patterns cannot name portably.
NO_CONTROL_CHARACTERS = "must not contain control characters"


def _tolerated(label: str, error: dict[str, Any]) -> bool:
    if error.get("message") == NO_CONTROL_CHARACTERS:
        return True
    return (label, re.sub(r"\[\d+\]", "[]", str(error.get("field")))) in SEMANTIC_RULES


def positive_data_acceptance_but_semantic_rules(
    ctx: CheckContext, response: Response, case: Case
) -> bool | None:
    """``positive_data_acceptance``, except for a 422 that blames only fields with a rule in
    SEMANTIC_RULES or control characters (documented false positives of the check)."""
    if response.status_code == 422:
        errors = (response.json() or {}).get("errors", [])
        if errors and all(_tolerated(case.operation.label, error) for error in errors):
            return None
    return positive_data_acceptance(ctx, response, case)


CHECKS: dict[str, Any] = {
    "excluded_checks": [positive_data_acceptance],
    "additional_checks": [positive_data_acceptance_but_semantic_rules],
}
FUZZ_SETTINGS = settings(
    deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)


class FuzzKey:
    """A tenant-admin key for the fuzzer; the fuzzer may revoke or rotate it (or disable its
    tenant) through the admin API, so a key that stopped working is replaced by a new one."""

    def __init__(self, container: Container) -> None:
        self.container = container
        self.token = ""
        self.minted = 0
        self._mint()

    def _mint(self) -> None:
        self.token = new_tenant(self.container).tokens["admin"]
        self.minted += 1

    def fresh(self) -> None:
        """Start over in a new, empty tenant."""
        self._mint()

    def headers(self) -> dict[str, str]:
        try:
            self.container.access.authenticate(self.token)
        except Unauthenticated:
            self._mint()
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture(scope="module")
def fuzz_app(client: TestClient, trained_container: Container) -> FastAPI:
    """A second app on the session's container: ``client`` has loaded the models and runs
    the job runner; this one starts neither (Schemathesis runs its lifespan itself)."""
    APP.app = create_app(trained_container, load_models=False, run_jobs=False)
    return APP.app


@pytest.fixture(scope="module")
def fuzz_key(trained_container: Container) -> FuzzKey:
    return FuzzKey(trained_container)


@pytest.fixture(scope="module", autouse=True)
def _record_settings(fuzz_tally: FuzzTally) -> None:
    fuzz_tally.settings = {
        "max_examples": EXAMPLES,
        "upload_max_examples": UPLOAD_EXAMPLES,
        "stateful_scenarios": STATEFUL_SCENARIOS,
        "stateful_steps": STATEFUL_STEPS,
        "schemathesis": schemathesis.__version__,
    }


@pytest.mark.fuzz
@schema.parametrize()
@FUZZ_SETTINGS
def test_api_conforms_to_its_schema(
    case: Case, fuzz_app: FastAPI, fuzz_key: FuzzKey, fuzz_tally: FuzzTally, backend: str
) -> None:
    label = case.operation.label
    fuzz_tally.count(backend, label)
    try:
        case.call_and_validate(headers=fuzz_key.headers(), **CHECKS)
    except (Exception, BaseExceptionGroup):  # FailureGroup is a BaseExceptionGroup
        fuzz_tally.fail(backend, label)
        raise


@pytest.mark.fuzz
def test_api_workflows(
    fuzz_app: FastAPI, fuzz_key: FuzzKey, fuzz_tally: FuzzTally, backend: str
) -> None:
    base: Any = schema.as_state_machine()

    class Workflow(base):  # type: ignore[misc,valid-type]
        def setup(self) -> None:
            # Each scenario starts in an empty tenant: what a step can link to must depend on
            # the scenario alone, or Hypothesis finds generation "flaky" when it replays one.
            fuzz_key.fresh()

        def get_call_kwargs(self, case: Case) -> dict[str, Any]:
            return {"headers": fuzz_key.headers()}

        def before_call(self, case: Case) -> None:
            fuzz_tally.count(backend, case.operation.label, stateful=True)

        def validate_response(
            self,
            response: Response,
            case: Case,
            additional_checks: list[Any] | None = None,
            **kwargs: Any,
        ) -> None:
            # The key is passed as explicit headers, as in the stateless test, so ignored_auth
            # knows it is a real key and probes the operation without it and with a wrong one.
            case.validate_response(
                response,
                headers=kwargs.get("headers"),
                transport_kwargs=kwargs,
                recorder=getattr(self, "recorder", None),
                **CHECKS,
            )

    try:
        Workflow.run(
            settings=settings(
                FUZZ_SETTINGS, max_examples=STATEFUL_SCENARIOS, stateful_step_count=STATEFUL_STEPS
            )
        )
    except (Exception, BaseExceptionGroup):  # FailureGroup is a BaseExceptionGroup
        fuzz_tally.fail(backend, "stateful workflows")
        raise


# -- tenant management, as a platform admin ---------------------------------------------------
# With the tenant-admin key above, /v1/tenants only ever answers 403. Here a platform-admin key
# fuzzes it for real, in a database of its own: a generated PATCH may disable any tenant it
# names, and the session's tenants must not be among them.
PLATFORM_APP = AppUnderTest()
TENANT_PATHS = {
    path: item for path, item in DOCUMENT["paths"].items() if path.startswith("/v1/tenants")
}
PLATFORM_SCHEMA = schemathesis.openapi.from_dict({**DOCUMENT, "paths": TENANT_PATHS}, config=CONFIG)
PLATFORM_SCHEMA.app = PLATFORM_APP


@pytest.fixture(scope="module")
def platform_key(
    backend: str, fresh_database: Any, tmp_path_factory: pytest.TempPathFactory
) -> Any:
    container = make_container(
        write_tiny_project(tmp_path_factory.mktemp("platform") / "project"),
        tmp_path_factory.mktemp("platform-state"),
        fresh_database(backend),
    )
    _key, token = container.access.create_key(
        "default",
        name="platform-fuzz",
        roles=frozenset({Role.ADMIN, Role.PLATFORM_ADMIN}),
        expires_at=None,
        actor="tests",
    )
    PLATFORM_APP.app = create_app(container, load_models=False, run_jobs=False)
    yield {"Authorization": f"Bearer {token}"}
    container.close()


@pytest.mark.fuzz
@PLATFORM_SCHEMA.parametrize()
@FUZZ_SETTINGS
def test_tenant_management_conforms_to_its_schema(
    case: Case, platform_key: dict[str, str], fuzz_tally: FuzzTally, backend: str
) -> None:
    label = f"{case.operation.label} (platform-admin)"
    fuzz_tally.count(backend, label)
    try:
        case.call_and_validate(headers=platform_key, **CHECKS)
    except (Exception, BaseExceptionGroup):  # FailureGroup is a BaseExceptionGroup
        fuzz_tally.fail(backend, label)
        raise


# -- no auth bypass ------------------------------------------------------------------------
def _operations(*, secured: bool) -> list[tuple[str, str, bool]]:
    return [
        (method.upper(), path, "requestBody" in operation)
        for path, item in DOCUMENT["paths"].items()
        for method, operation in item.items()
        if method in HTTP_METHODS and bool(operation.get("security")) == secured
    ]


def test_every_v1_operation_requires_a_key() -> None:
    public = [(method, path) for method, path, _ in _operations(secured=False)]
    assert {path for _, path in public} <= PUBLIC_PATHS, public


@pytest.mark.fuzz
@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer garbage",
        "Bearer sy_aaaaaaaaaaaa_" + "A" * 43,
        "Bearer a.b.c",
        "Basic dXNlcjpwYXNz",
    ],
)
def test_every_secured_operation_refuses_a_missing_or_garbage_key(
    client: TestClient, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    refused = 0
    for method, path, has_body in _operations(secured=True):
        url = path.replace("{", "").replace("}", "")  # /v1/runs/{run_id} -> /v1/runs/run_id
        response = client.request(method, url, headers=headers, json={} if has_body else None)
        where = f"{method} {path} with {authorization!r}"
        assert response.status_code == 401, f"{where}: {response.status_code} {response.text}"
        assert response.headers["content-type"] == "application/problem+json", where
        assert response.headers["www-authenticate"] == "Bearer", where
        assert response.json()["status"] == 401, where
        refused += 1
    assert refused >= 20  # the document lists every operation; a short list means a bad parse
