"""A database that cannot answer (SQLite locked past its busy timeout) is a 503 problem with
Retry-After on every path, including a wrong body, where the key is checked on the error path
before the input's errors are told. Real SQLite, real lock."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url

from shipyard.api.app import create_app
from shipyard.bootstrap import Container
from tests.conftest import make_container, new_tenant


@pytest.fixture(scope="module")
def database_url(fresh_database: Callable[[str], str]) -> str:
    return fresh_database("sqlite")


@pytest.fixture(scope="module")
def container(
    tiny_project: Path, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Container]:
    built = make_container(tiny_project, tmp_path_factory.mktemp("outage-state"), database_url)
    yield built
    built.close()


@pytest.fixture(scope="module")
def client(container: Container) -> Iterator[TestClient]:
    with TestClient(create_app(container), raise_server_exceptions=False) as test_client:
        yield test_client


def test_a_locked_database_is_a_503_even_on_the_validation_error_path(
    client: TestClient, container: Container, database_url: str
) -> None:
    keys = new_tenant(container)  # never used: checking it writes its last-used time
    bad_body = {"input": {"unknown": 1}}
    path = make_url(database_url).database
    assert path is not None
    locker = sqlite3.connect(path, isolation_level=None)
    try:
        locker.execute("BEGIN EXCLUSIVE")
        response = client.post("/v1/tasks/triage/runs", json=bad_body, headers=keys.auth())
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"].endswith("/database-unavailable")
    assert response.headers["retry-after"] == "1"
    # Once the lock is gone the same request is told what is wrong with its input.
    again = client.post("/v1/tasks/triage/runs", json=bad_body, headers=keys.auth())
    assert again.status_code == 422, again.text
