"""Shared fixtures: a tiny trained project, SQLite and PostgreSQL (pgserver) backends,
the ASGI app in-process, and tenants with keys of each role."""

from __future__ import annotations

import csv
import json
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url

from shipyard.access.principal import Principal
from shipyard.access.roles import Role
from shipyard.api.app import create_app
from shipyard.bootstrap import Container, build
from shipyard.settings import Settings

# Counts the Schemathesis fuzz cases and prints the total at the end of the session.
pytest_plugins = ["tests.api.fuzz_report"]

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "support-desk"
TINY_LABELS = [
    "card_arrival",
    "lost_or_stolen_card",
    "exchange_rate",
    "top_up_failed",
    "pin_blocked",
    "cash_withdrawal_charge",
]
ROWS_PER_LABEL = 25

TINY_SPEC = """\
name: {name}
version: 1
description: Route a ticket to one of a few banking intents (test project).
owner: tests@example.com
kind: classify
input:
  text: {{type: string, min_length: 1, max_length: 500, description: Ticket text}}
output:
  label: {{type: enum, values_from: data/labels.json, description: Intent}}
  confidence: {{type: number, minimum: 0, maximum: 1}}
model: {{provider: local, model: minilm-tfidf-logreg}}
training: {{path: data/train.csv, input: {{text: text}}, label: category}}
policy: {{roles: [caller, operator, admin], review_below: {review_below},
  review_labels: [pin_blocked]}}
evaluation:
  dataset: {{path: data/dev.csv, input: {{text: text}}, expected: {{label: category}}}}
  gates: {{accuracy: "{accuracy_gate}"}}
  max_drop: {{accuracy: 0.0}}
"""

ASK_SPEC = """\
name: ask
version: 1
description: Answer questions from the handbook collection with citations (test project).
owner: tests@example.com
kind: answer
input:
  question: {type: string, min_length: 1, max_length: 300}
output:
  answer: {type: string}
  answerable: {type: boolean}
  citations: {type: citations, max_items: 5}
  confidence: {type: number}
model: {provider: local, model: extractive-minilm-hybrid}
knowledge: {collections: [handbook], top_k: 5}
"""


def write_tiny_project(directory: Path) -> Path:
    """A project with two tasks on a BANKING77 slice (train and dev): ``triage`` answers,
    ``triage-strict`` sends (almost) everything to review and fails its evaluation gate."""
    (directory / "tasks").mkdir(parents=True)
    (directory / "data").mkdir()
    (directory / "shipyard.yaml").write_text("name: tiny-desk\ndefault_tenant: default\n")
    (directory / "data" / "labels.json").write_text(json.dumps(TINY_LABELS))
    for split, per_label in (("train", ROWS_PER_LABEL), ("dev", 10)):
        counts = dict.fromkeys(TINY_LABELS, 0)
        with (
            (EXAMPLE / "data" / f"{split}.csv").open(newline="") as source,
            (directory / "data" / f"{split}.csv").open("w", newline="") as target,
        ):
            writer = csv.writer(target)
            writer.writerow(["text", "category"])
            for row in csv.DictReader(source):
                label = row["category"]
                if label in counts and counts[label] < per_label:
                    counts[label] += 1
                    writer.writerow([row["text"], label])
    # triage-strict sends (almost) everything to review, and its accuracy gate cannot pass.
    for name, review_below, gate in (("triage", 0.2, ">= 0.5"), ("triage-strict", 0.999, "> 1")):
        (directory / "tasks" / f"{name}.yaml").write_text(
            TINY_SPEC.format(name=name, review_below=review_below, accuracy_gate=gate)
        )
    (directory / "tasks" / "ask.yaml").write_text(ASK_SPEC)
    return directory


@pytest.fixture(scope="session")
def tiny_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_project(tmp_path_factory.mktemp("tiny-project"))


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    import pgserver

    server = pgserver.get_server(tmp_path_factory.mktemp("pgdata"), cleanup_mode="stop")
    yield server
    server.cleanup()


@pytest.fixture(scope="session")
def fresh_database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str], str]:
    """Return a factory: backend name -> URL of a new, empty database on that backend."""

    def make(backend: str) -> str:
        name = f"t_{uuid.uuid4().hex[:12]}"
        if backend == "sqlite":
            return f"sqlite:///{tmp_path_factory.mktemp('db') / (name + '.db')}"
        server = request.getfixturevalue("pg_server")
        server.psql(f"CREATE DATABASE {name};")
        return make_url(server.get_uri()).set(database=name).render_as_string(hide_password=False)

    return make


def make_container(project: Path, state_dir: Path, database_url: str) -> Container:
    container = build(
        Settings(
            project_dir=project,
            data_dir=state_dir,
            database_url=database_url,
            secret_key="test-secret-key-" + "x" * 32,
            log_json=True,
        )
    )
    container.upgrade_database()
    container.ensure_default_tenant()
    return container


@pytest.fixture(
    scope="session", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def trained_container(
    backend: str,
    tiny_project: Path,
    fresh_database: Callable[[str], str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Container]:
    container = make_container(
        tiny_project, tmp_path_factory.mktemp(f"state-{backend}"), fresh_database(backend)
    )
    for task in container.training.untrained_tasks():
        container.training.train(task, actor="tests")
    yield container
    container.close()


@pytest.fixture(scope="module")
def own_container(
    backend: str,
    tiny_project: Path,
    fresh_database: Callable[[str], str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Container]:
    """A container of one test module's own: a new database on each backend, the tiny project
    untrained (for tests that take locks, race threads or change what others would see)."""
    container = make_container(
        tiny_project, tmp_path_factory.mktemp(f"own-{backend}"), fresh_database(backend)
    )
    yield container
    container.close()


def new_admin(container: Container) -> Principal:
    """An admin of a new tenant, as the services see one (no key needed)."""
    slug = f"a-{uuid.uuid4().hex[:10]}"
    tenant = container.access.create_tenant(slug, actor="tests")
    return Principal(tenant.id, slug, None, "tests", frozenset({Role.ADMIN}))


@pytest.fixture(scope="session")
def client(trained_container: Container) -> Iterator[TestClient]:
    with TestClient(create_app(trained_container), raise_server_exceptions=False) as test_client:
        yield test_client


@dataclass
class TenantKeys:
    slug: str
    tokens: dict[str, str]
    key_ids: dict[str, str]

    def auth(self, role: str = "caller") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}


def new_tenant(container: Container, *, expires_at: datetime | None = None) -> TenantKeys:
    slug = f"t-{uuid.uuid4().hex[:10]}"
    container.access.create_tenant(slug, actor="tests")
    tokens, ids = {}, {}
    for role in Role:
        key, token = container.access.create_key(
            slug,
            name=f"{role.value}-key",
            roles=frozenset({role}),
            expires_at=expires_at,
            actor="tests",
        )
        tokens[role.value], ids[role.value] = token, key.id
    return TenantKeys(slug, tokens, ids)


@pytest.fixture
def tenant(trained_container: Container) -> TenantKeys:
    return new_tenant(trained_container)


@pytest.fixture
def other_tenant(trained_container: Container) -> TenantKeys:
    return new_tenant(trained_container)
