"""Retries, back-off, the overall deadline and the circuit breaker, written once.

:class:`ResilientProvider` wraps any :class:`ChatProvider` that makes *one* attempt per call
and adds the policy around it, so every provider type behaves the same way:

* retry only what may succeed next time (429, 5xx, timeouts, dropped connections or streams),
  never another 4xx;
* wait ``Retry-After`` when the server sends it, else exponential back-off with full jitter
  (``uniform(0, min(cap, base * 2**n))``), so many clients that failed together do not come
  back together;
* never wait or start an attempt past the caller's deadline: when the wait would not leave time
  for another attempt, the last error is raised at once (the router can still fall back);
* each attempt is recorded with the provider's :class:`CircuitBreaker`; an open breaker fails
  fast with :class:`ProviderCircuitOpen` without touching the network.

Clock, sleep and random source are injectable so the state machine can be tested with a fake
clock; the real behaviour is tested against a real server through a fault-injecting proxy.
"""

from __future__ import annotations

import email.utils
import enum
import logging
import math
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC

from shipyard.providers.llm.errors import (
    ProviderCircuitOpen,
    ProviderError,
    ProviderRateLimited,
    ProviderTimeout,
)
from shipyard.providers.llm.types import (
    ChatProvider,
    ChatRequest,
    ChatResult,
    Deadline,
    StreamEnd,
    StreamEvent,
)

log = logging.getLogger("shipyard.providers")

Clock = Callable[[], float]
Sleep = Callable[[float], None]


def parse_retry_after(value: str | None, *, now: Clock = time.time) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: delta-seconds or an HTTP date."""
    if not value:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = when.timestamp() - now()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 2
    backoff_base: float = 0.5
    backoff_max: float = 8.0

    def backoff(self, retry: int, rng: random.Random) -> float:
        """Full jitter: any wait up to the exponential ceiling of (0-based) retry ``retry``."""
        ceiling = min(self.backoff_max, self.backoff_base * 2 ** min(retry, 30))
        return rng.uniform(0.0, ceiling)


class BreakerState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True)
class Permit:
    """Leave to make one call; its outcome counts only for the breaker period it was issued in
    (a slow call started before the breaker opened must not close it again)."""

    generation: int
    trial: bool


class CircuitBreaker:
    """Closed -> open after ``failure_threshold`` consecutive failures -> half-open after
    ``reset_seconds`` (one trial call let through, the others still fail fast) -> closed when
    the trial succeeds, open again when it fails. Thread-safe."""

    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int = 5,
        reset_seconds: float = 30.0,
        clock: Clock = time.monotonic,
    ) -> None:
        self.name = name
        self.failure_threshold = failure_threshold
        self.reset_seconds = reset_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._generation = 0
        self._trial_out = False

    @property
    def state(self) -> BreakerState:
        with self._lock:
            return self._current()

    def acquire(self) -> Permit:
        """A permit for one call, or :class:`ProviderCircuitOpen`."""
        with self._lock:
            state = self._current()
            if state is BreakerState.CLOSED:
                return Permit(self._generation, trial=False)
            if state is BreakerState.HALF_OPEN and not self._trial_out:
                self._trial_out = True
                return Permit(self._generation, trial=True)
            wait = max(0.0, self._opened_at + self.reset_seconds - self._clock())
            raise ProviderCircuitOpen(
                self.name,
                f"circuit open after {self.failure_threshold} consecutive failures "
                f"(next trial in {wait:.1f}s)",
            )

    def record_success(self, permit: Permit) -> None:
        with self._lock:
            if permit.generation == self._generation and self._state is not BreakerState.OPEN:
                self._state = BreakerState.CLOSED
                self._failures = 0
                self._trial_out = False

    def record_failure(self, permit: Permit) -> None:
        with self._lock:
            if permit.generation != self._generation or self._state is BreakerState.OPEN:
                return
            self._failures += 1
            if self._state is BreakerState.HALF_OPEN or self._failures >= self.failure_threshold:
                self._open()

    def release(self, permit: Permit) -> None:
        """The call ended without an outcome (e.g. the caller stopped reading a stream)."""
        with self._lock:
            if permit.trial and permit.generation == self._generation:
                self._trial_out = False

    def _current(self) -> BreakerState:
        if (
            self._state is BreakerState.OPEN
            and self._clock() - self._opened_at >= self.reset_seconds
        ):
            self._state = BreakerState.HALF_OPEN
            self._trial_out = False
        return self._state

    def _open(self) -> None:
        self._state = BreakerState.OPEN
        self._opened_at = self._clock()
        self._generation += 1
        self._trial_out = False
        log.warning(
            "circuit breaker opened",
            extra={"provider": self.name, "failures": self._failures},
        )

    def __repr__(self) -> str:
        return f"CircuitBreaker({self.name!r}, {self.state.value})"


class ResilientProvider:
    """A :class:`ChatProvider` adding retries, back-off, deadline and breaker to ``inner``."""

    def __init__(
        self,
        inner: ChatProvider,
        *,
        policy: RetryPolicy,
        breaker: CircuitBreaker,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.inner = inner
        self.name = inner.name
        self.policy = policy
        self.breaker = breaker
        self._clock = clock
        self._sleep = sleep
        # Jitter needs no cryptographic strength, only independence between processes.
        self._rng = rng or random.Random()  # noqa: S311

    def complete(self, request: ChatRequest, *, deadline: Deadline) -> ChatResult:
        started = self._clock()
        attempt = 0
        while True:
            attempt += 1
            permit = self._permit(deadline)
            try:
                result = self.inner.complete(request, deadline=deadline)
            except ProviderError as error:
                self._settle(permit, error)
                self._wait_or_raise(error, attempt, deadline)
                continue
            except BaseException:
                self.breaker.release(permit)
                raise
            self.breaker.record_success(permit)
            return replace(result, attempts=attempt, latency_ms=self._ms_since(started))

    def stream(self, request: ChatRequest, *, deadline: Deadline) -> Iterator[StreamEvent]:
        """Retries a stream only until its first text delta: after that the caller has seen
        part of the reply, and a second attempt would repeat or contradict it."""
        started = self._clock()
        attempt = 0
        while True:
            attempt += 1
            permit = self._permit(deadline)
            delivered = False
            failure: ProviderError | None = None
            events = self.inner.stream(request, deadline=deadline)
            try:
                for event in events:
                    if isinstance(event, StreamEnd):
                        event = replace(  # noqa: PLW2901 - the same event, with our counts
                            event, attempts=attempt, latency_ms=self._ms_since(started)
                        )
                    else:
                        delivered = True
                    yield event
            except ProviderError as error:
                failure = error
            except BaseException:  # GeneratorExit too: the caller stopped reading
                self.breaker.release(permit)
                raise
            finally:
                # Release the connection before any back-off sleep.
                close = getattr(events, "close", None)
                if close is not None:
                    close()
            if failure is None:
                self.breaker.record_success(permit)
                return
            self._settle(permit, failure)
            if delivered:
                raise failure
            self._wait_or_raise(failure, attempt, deadline)

    def close(self) -> None:
        close = getattr(self.inner, "close", None)
        if close is not None:
            close()

    def _permit(self, deadline: Deadline) -> Permit:
        if deadline.expired:
            raise ProviderTimeout(self.name, f"deadline of {deadline.seconds:g}s exceeded")
        return self.breaker.acquire()

    def _settle(self, permit: Permit, error: ProviderError) -> None:
        if error.counts_as_failure:
            self.breaker.record_failure(permit)
        else:
            self.breaker.record_success(permit)

    def _wait_or_raise(self, error: ProviderError, attempt: int, deadline: Deadline) -> None:
        """Sleep before the next attempt, or re-raise ``error`` when there is none to make."""
        if not error.retryable or attempt > self.policy.max_retries:
            raise error
        delay: float | None = None
        if isinstance(error, ProviderRateLimited):
            delay = error.retry_after
        if delay is None:
            delay = self.policy.backoff(attempt - 1, self._rng)
        if delay >= deadline.remaining():
            # Waiting would use up the deadline: fail now and leave the time to a fallback.
            raise error
        log.warning(
            "provider call failed, retrying",
            extra={
                "provider": self.name,
                "attempt": attempt,
                "error_type": type(error).__name__,
                "retry_in_s": round(delay, 3),
            },
        )
        self._sleep(delay)

    def _ms_since(self, started: float) -> float:
        return (self._clock() - started) * 1000.0

    def __repr__(self) -> str:
        return f"ResilientProvider({self.inner!r}, {self.policy}, {self.breaker!r})"
