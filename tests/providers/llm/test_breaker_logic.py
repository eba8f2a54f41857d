"""Pure state-machine tests with a fake clock: the circuit breaker, back-off with full jitter,
Retry-After parsing and the deadline. (The same behaviour against a real server is in
test_resilience_real.py.)"""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from shipyard.providers.llm import (
    BreakerState,
    CircuitBreaker,
    Deadline,
    ProviderCircuitOpen,
    RetryPolicy,
    parse_retry_after,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def breaker(clock: FakeClock, failures: int = 3, reset: float = 30) -> CircuitBreaker:
    return CircuitBreaker("p", failure_threshold=failures, reset_seconds=reset, clock=clock)


def fail(b: CircuitBreaker, times: int = 1) -> None:
    for _ in range(times):
        b.record_failure(b.acquire())


def test_opens_after_consecutive_failures_only() -> None:
    clock = FakeClock()
    b = breaker(clock)
    fail(b, 2)
    b.record_success(b.acquire())  # resets the count
    fail(b, 2)
    assert b.state is BreakerState.CLOSED

    fail(b)

    assert b.state is BreakerState.OPEN
    with pytest.raises(ProviderCircuitOpen, match=r"next trial in 30\.0s"):
        b.acquire()


def test_half_open_lets_one_trial_through_then_closes_on_success() -> None:
    clock = FakeClock()
    b = breaker(clock)
    fail(b, 3)
    clock.advance(29.9)
    assert b.state is BreakerState.OPEN
    clock.advance(0.1)
    assert b.state is BreakerState.HALF_OPEN

    trial = b.acquire()
    with pytest.raises(ProviderCircuitOpen):
        b.acquire()  # only one trial at a time
    b.record_success(trial)

    assert b.state is BreakerState.CLOSED
    b.record_success(b.acquire())


def test_failed_trial_opens_again_for_a_full_period() -> None:
    clock = FakeClock()
    b = breaker(clock)
    fail(b, 3)
    clock.advance(30)

    b.record_failure(b.acquire())

    assert b.state is BreakerState.OPEN
    clock.advance(29)
    assert b.state is BreakerState.OPEN
    clock.advance(1)
    assert b.state is BreakerState.HALF_OPEN


def test_abandoned_trial_is_given_back() -> None:
    clock = FakeClock()
    b = breaker(clock, failures=1)
    fail(b)
    clock.advance(30)
    trial = b.acquire()

    b.release(trial)

    b.record_success(b.acquire())
    assert b.state is BreakerState.CLOSED


def test_a_slow_call_from_before_the_opening_does_not_close_it() -> None:
    clock = FakeClock()
    b = breaker(clock, failures=2)
    slow = b.acquire()
    fail(b, 2)

    b.record_success(slow)
    assert b.state is BreakerState.OPEN
    clock.advance(30)
    trial = b.acquire()
    b.record_success(slow)  # still stale in the half-open period
    b.record_failure(slow)
    assert b.state is BreakerState.HALF_OPEN
    b.record_success(trial)
    assert b.state is BreakerState.CLOSED


def test_concurrent_callers_get_exactly_one_trial() -> None:
    clock = FakeClock()
    b = breaker(clock, failures=1)
    fail(b)
    clock.advance(30)
    granted: list[object] = []
    refused: list[object] = []
    start = threading.Barrier(16)

    def call() -> None:
        start.wait()
        try:
            granted.append(b.acquire())
        except ProviderCircuitOpen as error:
            refused.append(error)

    threads = [threading.Thread(target=call) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert (len(granted), len(refused)) == (1, 15)


def test_concurrent_failures_are_all_counted() -> None:
    clock = FakeClock()
    b = breaker(clock, failures=400)
    permits = [b.acquire() for _ in range(399)]
    threads = [threading.Thread(target=b.record_failure, args=(p,)) for p in permits]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert b.state is BreakerState.CLOSED

    fail(b)

    assert b.state is BreakerState.OPEN


def test_backoff_is_full_jitter_under_an_exponential_cap() -> None:
    policy = RetryPolicy(max_retries=10, backoff_base=0.5, backoff_max=8)
    rng = random.Random(7)
    for retry, ceiling in enumerate([0.5, 1, 2, 4, 8, 8, 8]):
        waits = [policy.backoff(retry, rng) for _ in range(2000)]
        assert all(0 <= w <= ceiling for w in waits)
        assert min(waits) < ceiling * 0.05  # anywhere from zero...
        assert max(waits) > ceiling * 0.95  # ...up to the ceiling


@pytest.mark.parametrize(
    ("value", "expected"),
    [("3", 3.0), ("0.5", 0.5), (" 12 ", 12.0), ("-4", 0.0), ("", None), (None, None)],
)
def test_retry_after_seconds(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value) == expected


def test_retry_after_http_date() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    later = format_datetime(now + timedelta(seconds=90), usegmt=True)

    assert parse_retry_after(later, now=now.timestamp) == 90.0
    assert (
        parse_retry_after(
            format_datetime(now - timedelta(seconds=5), usegmt=True), now=now.timestamp
        )
        == 0.0
    )
    assert parse_retry_after("soon, maybe", now=now.timestamp) is None
    assert parse_retry_after("nan") is None


def test_deadline_counts_down_on_its_clock() -> None:
    clock = FakeClock()
    deadline = Deadline(2.0, clock=clock)
    clock.advance(1.5)
    assert deadline.remaining() == pytest.approx(0.5)
    assert not deadline.expired
    clock.advance(1.0)
    assert deadline.remaining() == 0.0
    assert deadline.expired
