"""Rate limits: requests per minute and concurrent runs, per key and per tenant, enforced
over HTTP with 429 + Retry-After; in-process and shared through Redis."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from fastapi import FastAPI
from fastapi.testclient import TestClient

from shipyard.access.principal import Principal
from shipyard.api.app import create_app
from shipyard.api.routers.streaming import RunEventStream
from shipyard.bootstrap import Container, build
from shipyard.errors import RateLimited
from shipyard.governance.ratelimit import InProcessLimiter, RateGuard, RedisLimiter
from shipyard.settings import RateLimitSettings
from tests.conftest import TenantKeys, new_tenant

REDIS_URL = "redis://127.0.0.1:6379/15"
RUN = {"input": {"text": "my card has not arrived yet"}}

App = Callable[..., tuple[TestClient, Container]]


@pytest.fixture(scope="module")
def redis_url() -> str:
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=0.5)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.skip(f"Redis unreachable at {REDIS_URL}: {type(exc).__name__}")
    finally:
        client.close()
    return REDIS_URL


@pytest.fixture
def app(trained_container: Container) -> Iterator[App]:
    """Factory: an API (its own container, like one more API process) over the trained
    project's database, with the given limits; the trained models are reused (fast)."""
    opened: list[tuple[TestClient, Container]] = []

    def make(redis_url: str | None = None, **limits: int) -> tuple[TestClient, Container]:
        settings = trained_container.settings.model_copy(
            update={"rate_limits": RateLimitSettings(**limits), "redis_url": redis_url}
        )
        container = build(settings)
        container.__dict__["runtime"] = trained_container.runtime  # no model reloads
        client = TestClient(create_app(container, load_models=False, run_jobs=False))
        client.__enter__()
        opened.append((client, container))
        return client, container

    yield make
    for client, container in opened:
        client.__exit__(None, None, None)
        container.rate_limits.limiter.close()
        container.engine.dispose()


def principal_of(container: Container, keys: TenantKeys, role: str = "caller") -> Principal:
    return container.access.authenticate(keys.tokens[role])


def assert_limited(response: Any, named: str) -> None:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["type"].endswith("/rate-limited")
    assert named in body["detail"]
    assert int(response.headers["Retry-After"]) >= 1


@pytest.mark.parametrize("shared", [False, True], ids=["inprocess", "redis"])
def test_key_rpm_refuses_with_retry_after_and_spares_other_keys(
    app: App, shared: bool, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("redis_url") if shared else None
    client, container = app(url, key_rpm=2)
    keys = new_tenant(container)
    for _ in range(2):
        assert client.get("/v1/tasks", headers=keys.auth()).status_code == 200
    limited = client.get("/v1/tasks", headers=keys.auth())
    assert_limited(limited, "API key request limit")
    assert int(limited.headers["Retry-After"]) <= 60
    # Run routes count too; another key of the same tenant is unaffected.
    assert_limited(client.post("/v1/tasks/triage/runs", json=RUN, headers=keys.auth()), "API key")
    assert client.get("/v1/tasks", headers=keys.auth("operator")).status_code == 200


@pytest.mark.parametrize("shared", [False, True], ids=["inprocess", "redis"])
def test_tenant_rpm_covers_all_its_keys_only(
    app: App, shared: bool, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("redis_url") if shared else None
    client, container = app(url, tenant_rpm=2)
    keys, other = new_tenant(container), new_tenant(container)
    assert client.get("/v1/tasks", headers=keys.auth("caller")).status_code == 200
    assert client.get("/v1/tasks", headers=keys.auth("operator")).status_code == 200
    assert_limited(client.get("/v1/tasks", headers=keys.auth("admin")), "tenant request limit")
    assert client.get("/v1/tasks", headers=other.auth()).status_code == 200


@pytest.mark.parametrize("shared", [False, True], ids=["inprocess", "redis"])
@pytest.mark.parametrize("scope", ["key", "tenant"])
def test_concurrent_runs_refused_while_a_slot_is_held(
    app: App, shared: bool, scope: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("redis_url") if shared else None
    client, container = app(url, **{f"{scope}_concurrent_runs": 1})
    keys = new_tenant(container)
    release = container.rate_limits.acquire_run(principal_of(container, keys))  # a run going on
    limited = client.post("/v1/tasks/triage/runs", json=RUN, headers=keys.auth())
    assert_limited(limited, f"{'API key' if scope == 'key' else 'tenant'} concurrent run limit")
    # Only runs hold slots: other requests of the same key still pass.
    assert client.get("/v1/tasks", headers=keys.auth()).status_code == 200
    release()
    assert client.post("/v1/tasks/triage/runs", json=RUN, headers=keys.auth()).status_code == 201
    assert client.post("/v1/tasks/triage/runs", json=RUN, headers=keys.auth()).status_code == 201


def test_slot_released_when_the_run_fails(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    client, container = app(key_concurrent_runs=1)
    keys = new_tenant(container)

    def explode(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(container.runs, "create", explode)
    assert client.post("/v1/tasks/triage/runs", json=RUN, headers=keys.auth()).status_code == 500
    release = container.rate_limits.acquire_run(principal_of(container, keys))  # slot is free
    release()


def test_two_api_processes_share_counts_through_redis(app: App, redis_url: str) -> None:
    first, container = app(redis_url, key_rpm=3, key_concurrent_runs=1)
    second, _ = app(redis_url, key_rpm=3, key_concurrent_runs=1)
    keys = new_tenant(container)
    assert first.get("/v1/tasks", headers=keys.auth()).status_code == 200
    assert second.get("/v1/tasks", headers=keys.auth()).status_code == 200
    assert first.get("/v1/tasks", headers=keys.auth()).status_code == 200
    assert_limited(second.get("/v1/tasks", headers=keys.auth()), "API key request limit")

    other = new_tenant(container)
    release = container.rate_limits.acquire_run(principal_of(container, other))  # "process 1"
    assert_limited(
        second.post("/v1/tasks/triage/runs", json=RUN, headers=other.auth()), "concurrent run"
    )
    release()
    assert second.post("/v1/tasks/triage/runs", json=RUN, headers=other.auth()).status_code == 201


# --- the limiters on their own -------------------------------------------------------------


def principal(key: str = "k1", tenant: str = "t1") -> Principal:
    return Principal(tenant, tenant, key, "test", frozenset())


@pytest.fixture
def redis_limiters(redis_url: str) -> Iterator[Callable[..., RedisLimiter]]:
    prefix = f"shipyard:test:{uuid.uuid4().hex}:"  # isolates this test's keys
    made: list[RedisLimiter] = []

    def make(**options: Any) -> RedisLimiter:
        limiter = RedisLimiter.from_url(redis_url, prefix=prefix, **options)
        made.append(limiter)
        return limiter

    yield make
    for limiter in made:
        limiter.close()


def test_inprocess_window_starts_over_after_a_minute() -> None:
    now = [1000.0]
    limiter = InProcessLimiter(clock=lambda: now[0])
    assert limiter.hit("b", 1) is None
    now[0] += 20
    assert limiter.hit("b", 1) == 40
    now[0] += 40
    assert limiter.hit("b", 1) is None


def test_redis_slots_of_two_limiters_are_shared_and_expire(
    redis_limiters: Callable[..., RedisLimiter],
) -> None:
    one, two = redis_limiters(slot_ttl=1), redis_limiters(slot_ttl=1)
    token = one.acquire("runs", 1)
    assert token is not None
    assert two.acquire("runs", 1) is None
    one.release("runs", token)
    crashed = two.acquire("runs", 1)  # taken and never released: its process "died"
    assert crashed is not None
    assert one.acquire("runs", 1) is None
    time.sleep(1.1)  # the slot's TTL gives it back
    assert one.acquire("runs", 1) is not None


def test_guard_releases_the_key_slot_when_the_tenant_is_full() -> None:
    guard = RateGuard(
        RateLimitSettings(key_concurrent_runs=1, tenant_concurrent_runs=1), InProcessLimiter()
    )
    release = guard.acquire_run(principal("k1"))
    with pytest.raises(RateLimited, match="tenant concurrent run limit"):
        guard.acquire_run(principal("k2"))
    release()
    # k2's key slot was given back when its tenant refused: k2 may run elsewhere at once.
    guard.acquire_run(principal("k2", tenant="t2"))


def test_slot_released_after_an_exception() -> None:
    guard = RateGuard(RateLimitSettings(key_concurrent_runs=1), InProcessLimiter())
    with pytest.raises(RuntimeError), guard.run_slot(principal()):
        raise RuntimeError("the run failed")
    guard.acquire_run(principal())  # free again


def test_redis_unreachable_fails_open() -> None:
    limiter = RedisLimiter.from_url("redis://127.0.0.1:1/0")
    try:
        assert limiter.hit("b", 1) is None
        assert limiter.hit("b", 1) is None
        token = limiter.acquire("s", 1)
        assert token is not None
        limiter.release("s", token)
    finally:
        limiter.close()


def test_stream_response_releases_its_slot_when_it_closes() -> None:
    released: list[str] = []
    demo = FastAPI()

    @demo.get("/stream")
    def stream() -> RunEventStream:
        return RunEventStream(iter(()), on_close=lambda: released.append("slot"))

    with TestClient(demo) as client:
        assert client.get("/stream").status_code == 200
    assert released == ["slot"]
