"""Rate limits and quotas: requests per minute and concurrent runs, per API key and per tenant.

:class:`RateGuard` is the policy (which buckets a principal fills, which error to raise);
a :class:`Limiter` is the counting: :class:`InProcessLimiter` for a single API process,
:class:`RedisLimiter` when several processes must share the counts (``SHIPYARD_REDIS_URL``).
"""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

import redis

from shipyard.access.principal import Principal
from shipyard.errors import RateLimited
from shipyard.settings import RateLimitSettings

log = logging.getLogger("shipyard.ratelimit")

WINDOW_SECONDS = 60
# A run slot held longer than this is considered leaked (its process died mid-run) and is
# given back. Longer than any run should take: provider deadlines and retries end well before.
DEFAULT_SLOT_TTL_SECONDS = 900
# Concurrency has no reset time to wait for; one second is a polite, honest hint.
SLOT_RETRY_AFTER = 1


class Limiter(Protocol):
    def hit(self, bucket: str, limit: int) -> int | None:
        """Count one request in ``bucket``'s current minute: None if within ``limit``,
        otherwise the seconds until the window starts over."""

    def acquire(self, bucket: str, limit: int) -> str | None:
        """Take one of ``limit`` slots of ``bucket``: a token for :meth:`release`, or None."""

    def release(self, bucket: str, token: str) -> None: ...

    def close(self) -> None: ...


class InProcessLimiter:
    """Fixed one-minute windows and slot counters in this process's memory, under a lock
    (requests are handled on several worker threads)."""

    _PRUNE_ABOVE = 10_000  # windows kept before expired ones are dropped

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._windows: dict[str, tuple[float, int]] = {}
        self._slots: dict[str, set[str]] = {}

    def hit(self, bucket: str, limit: int) -> int | None:
        with self._lock:
            now = self._clock()
            if len(self._windows) > self._PRUNE_ABOVE:
                self._windows = {
                    name: window
                    for name, window in self._windows.items()
                    if now - window[0] < WINDOW_SECONDS
                }
            start, count = self._windows.get(bucket, (now, 0))
            if now - start >= WINDOW_SECONDS:
                start, count = now, 0
            # Refused requests count too, as with Redis INCR: hammering does not pay off.
            self._windows[bucket] = (start, count + 1)
            if count + 1 <= limit:
                return None
            return max(1, math.ceil(start + WINDOW_SECONDS - now))

    def acquire(self, bucket: str, limit: int) -> str | None:
        with self._lock:
            held = self._slots.setdefault(bucket, set())
            if len(held) >= limit:
                return None
            token = uuid.uuid4().hex
            held.add(token)
            return token

    def release(self, bucket: str, token: str) -> None:
        with self._lock:
            held = self._slots.get(bucket)
            if held is not None:
                held.discard(token)
                if not held:
                    del self._slots[bucket]

    def close(self) -> None:
        pass


# INCR and EXPIRE in one script: two API processes can never both see "first request" or
# leave a counter without an expiry (which would block a key forever).
_HIT = """
local count = redis.call('INCR', KEYS[1])
local ttl = redis.call('TTL', KEYS[1])
if ttl < 0 then
  redis.call('EXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {count, ttl}
"""

# Slots are members of a sorted set scored by their expiry (Redis's own clock, so the API
# hosts' clocks do not matter): a process that crashed mid-run leaks its slot only until the
# score passes, never forever, while live slots are unaffected.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]) * 1000, ARGV[3])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]) + 1)
return 1
"""


class RedisLimiter:
    """Counts shared by every API process using the same Redis.

    Fails open: if Redis is unreachable the request is served (and a warning logged), since
    refusing all traffic because the limiter is down would be a worse outage than briefly
    unenforced limits.
    """

    def __init__(
        self,
        client: redis.Redis,
        *,
        prefix: str = "shipyard:rl:",
        slot_ttl: int = DEFAULT_SLOT_TTL_SECONDS,
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._slot_ttl = slot_ttl
        self._hit = client.register_script(_HIT)
        self._acquire = client.register_script(_ACQUIRE)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> RedisLimiter:
        # Short timeouts: every authenticated request waits on Redis.
        client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        return cls(client, **options)

    def hit(self, bucket: str, limit: int) -> int | None:
        try:
            count, ttl = self._hit(keys=[self._prefix + bucket], args=[WINDOW_SECONDS])
        except redis.RedisError as exc:
            log.warning("rate limiter unavailable", extra={"error_type": type(exc).__name__})
            return None
        return None if int(count) <= limit else max(1, int(ttl))

    def acquire(self, bucket: str, limit: int) -> str | None:
        token = uuid.uuid4().hex
        try:
            taken = self._acquire(keys=[self._prefix + bucket], args=[limit, self._slot_ttl, token])
        except redis.RedisError as exc:
            log.warning("rate limiter unavailable", extra={"error_type": type(exc).__name__})
            return token  # fail open; releasing an unknown token is harmless
        return token if int(taken) == 1 else None

    def release(self, bucket: str, token: str) -> None:
        try:
            self._client.zrem(self._prefix + bucket, token)
        except redis.RedisError as exc:  # the slot's expiry gives it back later
            log.warning("rate limiter unavailable", extra={"error_type": type(exc).__name__})

    def close(self) -> None:
        self._client.close()


def make_limiter(redis_url: str | None) -> Limiter:
    return RedisLimiter.from_url(redis_url) if redis_url else InProcessLimiter()


class RateGuard:
    """Applies :class:`RateLimitSettings` to principals; null limits cost nothing."""

    def __init__(self, limits: RateLimitSettings, limiter: Limiter) -> None:
        self._limits = limits
        self.limiter = limiter

    def _scopes(
        self, principal: Principal, key_limit: int | None, tenant_limit: int | None
    ) -> list[tuple[str, str, int]]:
        scopes = []
        if key_limit is not None and principal.key_id is not None:
            scopes.append(("key", principal.key_id, key_limit))
        if tenant_limit is not None:
            scopes.append(("tenant", principal.tenant_id, tenant_limit))
        return scopes

    def check_request(self, principal: Principal) -> None:
        """Count one request; raise :class:`RateLimited` if the key or tenant is over its
        requests-per-minute limit."""
        limits = self._limits
        for scope, ident, limit in self._scopes(principal, limits.key_rpm, limits.tenant_rpm):
            wait = self.limiter.hit(f"rpm:{scope}:{ident}", limit)
            if wait is not None:
                raise RateLimited(
                    f"{_NAMES[scope]} request limit reached ({limit} requests per minute); "
                    f"retry in {wait} s",
                    retry_after=wait,
                )

    def acquire_run(self, principal: Principal) -> Callable[[], None]:
        """Take a concurrent-run slot for the key and the tenant, or raise
        :class:`RateLimited`; returns the (idempotent) release, which the caller must call
        in a ``finally``."""
        limits = self._limits
        held: list[tuple[str, str]] = []

        def release() -> None:
            while held:
                self.limiter.release(*held.pop())

        scopes = self._scopes(principal, limits.key_concurrent_runs, limits.tenant_concurrent_runs)
        try:
            for scope, ident, limit in scopes:
                bucket = f"runs:{scope}:{ident}"
                token = self.limiter.acquire(bucket, limit)
                if token is None:
                    raise RateLimited(
                        f"{_NAMES[scope]} concurrent run limit reached ({limit} at a time); "
                        f"retry in {SLOT_RETRY_AFTER} s",
                        retry_after=SLOT_RETRY_AFTER,
                    )
                held.append((bucket, token))
        except BaseException:
            release()  # the key's slot, when the tenant's was refused
            raise
        return release

    @contextmanager
    def run_slot(self, principal: Principal) -> Iterator[None]:
        release = self.acquire_run(principal)
        try:
            yield
        finally:
            release()


_NAMES = {"key": "API key", "tenant": "tenant"}
