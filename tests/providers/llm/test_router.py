"""The model router against the real server: fallbacks, which errors fall back, structured
output repair, metrics and cost."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

import pytest
from pydantic import BaseModel

from shipyard.errors import ConfigError, InvalidModelOutput
from shipyard.observability.metrics import Metrics
from shipyard.providers.llm import (
    ChatMessage,
    ChatRequest,
    ModelRouter,
    PriceTable,
    ProviderRejected,
    ProviderUnavailable,
    RouteExhausted,
    StreamEnd,
    TextDelta,
    build_providers,
)
from shipyard.settings import ModelPrice
from shipyard.spec.model import ModelRoute
from tests.providers.llm.conftest import MODEL, deadline, make_settings, provider_settings
from tests.providers.llm.fault_proxy import Fault, FaultProxy

pytestmark = pytest.mark.llm


class Sentiment(BaseModel):
    sentiment: Literal["positive", "negative", "neutral"]


@pytest.fixture
def second_proxy(llama_url: str) -> Iterator[FaultProxy]:
    fault_proxy = FaultProxy(llama_url)
    yield fault_proxy
    fault_proxy.close()


def router_for(metrics: Metrics | None = None, **bases: str) -> ModelRouter:
    settings = make_settings(
        **{name: provider_settings(base + "/v1", max_retries=1) for name, base in bases.items()}
    )
    return ModelRouter(
        build_providers(settings),
        prices=PriceTable({"direct": {MODEL: ModelPrice(input_per_1k=0.5, output_per_1k=1.5)}}),
        metrics=metrics,
    )


def fallback_route() -> ModelRoute:
    return ModelRoute.model_validate(
        {
            "provider": "primary",
            "model": MODEL,
            "fallbacks": [{"provider": "direct", "model": MODEL}],
        }
    )


def hello(max_tokens: int = 8) -> ChatRequest:
    return ChatRequest(messages=[ChatMessage("user", "Say hello.")], max_tokens=max_tokens)


def sentiment_request() -> ChatRequest:
    return ChatRequest(
        messages=[ChatMessage("user", "Great service, thanks! What is the sentiment?")],
        max_tokens=48,
    )


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_failing_primary_falls_back_and_says_who_served(proxy: FaultProxy, llama_url: str) -> None:
    proxy.always = Fault.error(500)
    metrics = Metrics()
    router = router_for(metrics, primary=proxy.url, direct=llama_url)

    routed = router.complete(fallback_route(), hello(), deadline=deadline())

    assert proxy.count == 2  # the primary's attempt and its one retry
    assert routed.position == 1
    assert routed.fallback_used
    assert (routed.entry.provider, routed.entry.model) == ("direct", MODEL)
    assert routed.result.provider == "direct"
    assert [type(e) for e in routed.failures] == [ProviderUnavailable]
    assert routed.cost is not None
    assert routed.cost > 0
    assert (
        sample(
            metrics,
            "shipyard_llm_calls_total",
            provider="primary",
            model=MODEL,
            outcome="unavailable",
        )
        == 1
    )
    assert (
        sample(metrics, "shipyard_llm_calls_total", provider="direct", model=MODEL, outcome="ok")
        == 1
    )
    tokens_out = sample(
        metrics, "shipyard_llm_tokens_total", provider="direct", model=MODEL, direction="output"
    )
    assert tokens_out == routed.usage.completion_tokens
    assert sample(metrics, "shipyard_llm_cost_total", provider="direct", model=MODEL) == (
        pytest.approx(routed.cost)
    )
    assert (
        sample(metrics, "shipyard_llm_latency_seconds_count", provider="direct", model=MODEL) == 1
    )
    assert sample(metrics, "shipyard_breaker_open", provider="primary") == 0


def test_bad_request_does_not_fall_back(proxy: FaultProxy, second_proxy: FaultProxy) -> None:
    proxy.always = Fault.error(400)
    router = router_for(primary=proxy.url, direct=second_proxy.url)

    with pytest.raises(ProviderRejected):
        router.complete(fallback_route(), hello(), deadline=deadline())

    assert proxy.count == 1
    assert second_proxy.count == 0  # the same request would be refused again, and cost money


def test_model_not_found_falls_back(proxy: FaultProxy, llama_url: str) -> None:
    proxy.always = Fault.error(404, message="The model does not exist")
    router = router_for(primary=proxy.url, direct=llama_url)

    routed = router.complete(fallback_route(), hello(), deadline=deadline())

    assert proxy.count == 1  # not retried
    assert routed.entry.provider == "direct"
    assert isinstance(routed.failures[0], ProviderRejected)


def test_every_entry_failing_raises_route_exhausted(
    proxy: FaultProxy, second_proxy: FaultProxy
) -> None:
    proxy.always = Fault.error(503)
    second_proxy.always = Fault.error(429)
    router = router_for(primary=proxy.url, direct=second_proxy.url)

    with pytest.raises(RouteExhausted) as caught:
        router.complete(fallback_route(), hello(), deadline=deadline())

    assert [e.provider for e in caught.value.errors] == ["primary", "direct"]
    assert (proxy.count, second_proxy.count) == (2, 2)


def test_invalid_json_is_repaired_once_then_raises(proxy: FaultProxy) -> None:
    proxy.push(Fault.rewrite("Sure! The sentiment is positive."), Fault.rewrite("positive"))
    metrics = Metrics()
    router = router_for(metrics, primary=proxy.url)
    route = ModelRoute(provider="primary", model=MODEL)

    with pytest.raises(InvalidModelOutput) as caught:
        router.complete(route, sentiment_request(), deadline=deadline(), output_model=Sentiment)

    assert proxy.count == 2
    assert caught.value.problems
    repair = proxy.requests[1].body["messages"]
    assert repair[-2] == {"role": "assistant", "content": "Sure! The sentiment is positive."}
    assert repair[-1]["role"] == "user"
    assert "not valid" in repair[-1]["content"]
    assert proxy.requests[1].body["response_format"]["json_schema"]["strict"] is True
    assert (
        sample(
            metrics,
            "shipyard_llm_calls_total",
            provider="primary",
            model=MODEL,
            outcome="invalid_output",
        )
        == 2
    )


def test_invalid_json_then_valid_reply_is_used(proxy: FaultProxy) -> None:
    proxy.push(Fault.rewrite('{"sentiment": "ecstatic"}'))
    router = router_for(primary=proxy.url)
    route = ModelRoute(provider="primary", model=MODEL)

    routed = router.complete(
        route, sentiment_request(), deadline=deadline(), output_model=Sentiment
    )

    assert proxy.count == 2
    assert isinstance(routed.output, Sentiment)
    assert len(routed.replies) == 2
    assert routed.usage.prompt_tokens == sum(r.usage.prompt_tokens for r in routed.replies)
    assert routed.cost is None  # no price configured for this provider: unknown, not free


def test_stream_falls_back_before_first_delta(proxy: FaultProxy, llama_url: str) -> None:
    proxy.always = Fault.error(500)
    router = router_for(primary=proxy.url, direct=llama_url)

    events = list(router.stream(fallback_route(), hello(max_tokens=4), deadline=deadline()))

    assert any(isinstance(e, TextDelta) for e in events)
    end = events[-1]
    assert isinstance(end, StreamEnd)
    assert end.provider == "direct"


def test_route_naming_an_unconfigured_provider_is_a_config_error(llama_url: str) -> None:
    router = router_for(direct=llama_url)
    route = ModelRoute(provider="nowhere", model=MODEL)

    with pytest.raises(ConfigError, match="nowhere"):
        router.complete(route, hello(), deadline=deadline())


def test_no_fallback_is_tried_once_the_deadline_is_spent(
    proxy: FaultProxy, second_proxy: FaultProxy
) -> None:
    proxy.always = Fault.delay(3)
    router = router_for(primary=proxy.url, direct=second_proxy.url)

    with pytest.raises(RouteExhausted) as caught:
        router.complete(fallback_route(), hello(), deadline=deadline(0.6))

    assert [e.outcome for e in caught.value.errors] == ["timeout"]
    assert second_proxy.count == 0
