"""Retries, back-off, deadlines and the circuit breaker against the real server, through a
fault-injecting proxy that counts the attempts it receives."""

from __future__ import annotations

import time

import pytest

from shipyard.providers.llm import (
    BreakerState,
    ChatMessage,
    ChatRequest,
    ProviderCircuitOpen,
    ProviderRateLimited,
    ProviderRejected,
    ProviderTimeout,
    ProviderUnavailable,
    StreamEnd,
    TextDelta,
)
from tests.providers.llm.conftest import MODEL, deadline, make_provider
from tests.providers.llm.fault_proxy import Fault, FaultProxy

pytestmark = pytest.mark.llm


def hello(max_tokens: int = 8) -> ChatRequest:
    return ChatRequest(
        messages=[ChatMessage("user", "Say hello.")], max_tokens=max_tokens, model=MODEL
    )


def test_429_waits_retry_after_then_succeeds(proxy: FaultProxy) -> None:
    proxy.push(Fault.error(429, retry_after=1))
    provider = make_provider("p", proxy.url + "/v1")

    result = provider.complete(hello(), deadline=deadline())

    assert proxy.count == 2
    assert result.attempts == 2
    first, second = proxy.requests
    assert second.at - first.at >= 1.0  # waited what the server asked, not the short back-off
    assert result.usage.completion_tokens > 0


def test_429_with_http_date_retry_after_is_honoured(proxy: FaultProxy) -> None:
    soon = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 2))
    proxy.push(Fault.error(429, retry_after=soon))
    provider = make_provider("p", proxy.url + "/v1")

    provider.complete(hello(), deadline=deadline())

    first, second = proxy.requests
    assert proxy.count == 2
    assert second.at - first.at >= 0.5  # the date has whole-second precision


def test_retry_after_beyond_the_deadline_fails_at_once(proxy: FaultProxy) -> None:
    proxy.push(Fault.error(429, retry_after=30))
    provider = make_provider("p", proxy.url + "/v1")
    started = time.monotonic()

    with pytest.raises(ProviderRateLimited) as caught:
        provider.complete(hello(), deadline=deadline(5))

    assert caught.value.retry_after == 30
    assert proxy.count == 1
    assert time.monotonic() - started < 5  # did not sleep into the deadline


@pytest.mark.parametrize("status", [500, 503])
def test_server_error_is_retried(proxy: FaultProxy, status: int) -> None:
    proxy.push(Fault.error(status))
    provider = make_provider("p", proxy.url + "/v1")

    result = provider.complete(hello(), deadline=deadline())

    assert proxy.count == 2
    assert result.attempts == 2


def test_server_errors_beyond_max_retries_raise_unavailable(proxy: FaultProxy) -> None:
    proxy.always = Fault.error(502)
    provider = make_provider("p", proxy.url + "/v1", max_retries=2)

    with pytest.raises(ProviderUnavailable):
        provider.complete(hello(), deadline=deadline())

    assert proxy.count == 3  # one attempt and two retries


def test_400_is_rejected_without_retry(proxy: FaultProxy) -> None:
    proxy.push(Fault.error(400, message="messages: bad request"))
    provider = make_provider("p", proxy.url + "/v1")

    with pytest.raises(ProviderRejected) as caught:
        provider.complete(hello(), deadline=deadline())

    assert proxy.count == 1
    assert caught.value.status == 400
    assert not caught.value.fallback
    assert "bad request" in str(caught.value)


def test_slow_server_times_out_after_retries(proxy: FaultProxy) -> None:
    proxy.always = Fault.delay(1.5)
    provider = make_provider("p", proxy.url + "/v1", read_timeout=0.4, max_retries=1)
    started = time.monotonic()

    with pytest.raises(ProviderTimeout):
        provider.complete(hello(), deadline=deadline(10))

    assert proxy.count == 2
    assert time.monotonic() - started < 5


def test_deadline_bounds_the_whole_call(proxy: FaultProxy) -> None:
    """Ten retries allowed, but the deadline ends the call: every attempt's timeout is capped
    by the time left, and no attempt starts after it."""
    proxy.always = Fault.delay(3)
    provider = make_provider("p", proxy.url + "/v1", read_timeout=0.5, max_retries=10)
    started = time.monotonic()

    with pytest.raises(ProviderTimeout):
        provider.complete(hello(), deadline=deadline(1.2))

    elapsed = time.monotonic() - started
    assert elapsed < 1.2 + 0.5  # the deadline plus scheduling slack
    assert 2 <= proxy.count < 10


def test_dropped_reply_is_retried(proxy: FaultProxy) -> None:
    proxy.push(Fault.cut())
    provider = make_provider("p", proxy.url + "/v1")

    result = provider.complete(hello(), deadline=deadline())

    assert proxy.count == 2
    assert result.attempts == 2


def test_stream_cut_before_any_text_is_retried(proxy: FaultProxy) -> None:
    proxy.push(Fault.cut(after_events=0))
    provider = make_provider("p", proxy.url + "/v1")

    events = list(provider.stream(hello(), deadline=deadline()))

    assert proxy.count == 2
    end = events[-1]
    assert isinstance(end, StreamEnd)
    assert end.attempts == 2


def test_stream_cut_after_text_raises_unavailable(proxy: FaultProxy) -> None:
    """Text already handed to the caller cannot be taken back, so no silent second attempt."""
    proxy.push(Fault.cut(after_events=3))
    provider = make_provider("p", proxy.url + "/v1")
    received: list[str] = []

    def read_stream() -> None:
        for event in provider.stream(hello(max_tokens=12), deadline=deadline()):
            if isinstance(event, TextDelta):
                received.append(event.text)

    with pytest.raises(ProviderUnavailable):
        read_stream()

    assert received  # the cut came mid-stream
    assert proxy.count == 1


def test_breaker_opens_fails_fast_then_half_opens_and_closes(proxy: FaultProxy) -> None:
    proxy.always = Fault.error(500)
    provider = make_provider(
        "p", proxy.url + "/v1", max_retries=0, breaker_failures=2, breaker_reset_seconds=1
    )

    for _ in range(2):
        with pytest.raises(ProviderUnavailable):
            provider.complete(hello(), deadline=deadline())
    assert provider.breaker.state is BreakerState.OPEN
    with pytest.raises(ProviderCircuitOpen):
        provider.complete(hello(), deadline=deadline())
    assert proxy.count == 2  # failed fast, the server was not called

    time.sleep(1.1)
    assert provider.breaker.state is BreakerState.HALF_OPEN
    proxy.always = None
    result = provider.complete(hello(), deadline=deadline())

    assert proxy.count == 3
    assert result.content
    assert provider.breaker.state is BreakerState.CLOSED


def test_half_open_trial_failure_opens_again(proxy: FaultProxy) -> None:
    proxy.always = Fault.error(503)
    provider = make_provider(
        "p", proxy.url + "/v1", max_retries=0, breaker_failures=1, breaker_reset_seconds=0.5
    )
    with pytest.raises(ProviderUnavailable):
        provider.complete(hello(), deadline=deadline())
    time.sleep(0.6)

    with pytest.raises(ProviderUnavailable):
        provider.complete(hello(), deadline=deadline())  # the trial call

    assert proxy.count == 2
    assert provider.breaker.state is BreakerState.OPEN
    with pytest.raises(ProviderCircuitOpen):
        provider.complete(hello(), deadline=deadline())
    assert proxy.count == 2


def test_rejections_do_not_open_the_breaker(proxy: FaultProxy) -> None:
    proxy.always = Fault.error(404)
    provider = make_provider("p", proxy.url + "/v1", breaker_failures=1)

    for _ in range(3):
        with pytest.raises(ProviderRejected):
            provider.complete(hello(), deadline=deadline())

    assert provider.breaker.state is BreakerState.CLOSED
    assert proxy.count == 3
