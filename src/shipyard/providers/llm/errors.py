"""Errors of the LLM provider layer, vendor-neutral.

Providers translate their SDK's exceptions into these, by type. They are internal: the router
decides on retries and fallbacks from their class alone, and the service layer maps whatever
escapes to a problem type. Messages never carry request headers or keys.
"""

from __future__ import annotations


class ProviderError(Exception):
    """Base: a provider could not produce a reply."""

    retryable: bool = False
    """Another attempt at the same provider may succeed."""
    fallback: bool = True
    """Another route entry (provider / model) may succeed."""
    counts_as_failure: bool = True
    """Evidence that the provider is unhealthy (feeds its circuit breaker)."""
    outcome: str = "error"
    """Metric label of the call outcome."""

    def __init__(self, provider: str, message: str) -> None:
        super().__init__(f"{provider}: {message}")
        self.provider = provider


class ProviderTimeout(ProviderError):
    """No (complete) reply within the read timeout or the overall deadline."""

    retryable = True
    outcome = "timeout"


class ProviderRateLimited(ProviderError):
    """HTTP 429. ``retry_after`` is the server's wait hint in seconds, if it sent one."""

    retryable = True
    outcome = "rate_limited"

    def __init__(self, provider: str, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(provider, message)
        self.retry_after = retry_after


class ProviderUnavailable(ProviderError):
    """5xx, a refused or reset connection, or a stream that ended before its last event."""

    retryable = True
    outcome = "unavailable"


class ProviderRejected(ProviderError):
    """Any other 4xx: the same request will be rejected again, so it is never retried.

    Whether another route entry is tried depends on whose fault it is: 400, 413 and 422 say
    the *request* is wrong (every provider would refuse it, and trying costs money), so no
    fallback; 401, 403, 404 (unknown model or deployment) and the like are about *this*
    provider's account or catalogue, so the next entry may well serve it.
    """

    counts_as_failure = False  # the provider answered promptly; it is healthy
    outcome = "rejected"
    REQUEST_FAULTS = frozenset({400, 413, 422})

    def __init__(self, provider: str, message: str, *, status: int) -> None:
        super().__init__(provider, message)
        self.status = status
        self.fallback = status not in self.REQUEST_FAULTS


class ProviderCircuitOpen(ProviderError):
    """The provider's circuit breaker is open: failing fast without calling it."""

    counts_as_failure = False  # no call was made
    outcome = "circuit_open"


class RouteExhausted(ProviderError):
    """Every entry of a model route failed; ``errors`` holds each entry's last error."""

    def __init__(self, errors: list[ProviderError]) -> None:
        summary = "; ".join(str(error) for error in errors) or "no route entry"
        super().__init__("route", f"all route entries failed ({summary})")
        self.errors = errors
        self.outcome = errors[-1].outcome if errors else "error"
