"""The OpenAI provider against a real llama.cpp server: replies, usage, strict JSON schema
output, streaming. Assertions are about structure, never the small model's wording."""

from __future__ import annotations

from typing import Literal

import pytest
from pydantic import BaseModel

from shipyard.providers.llm import (
    ChatMessage,
    ChatRequest,
    ModelRouter,
    StreamCollector,
    StreamEnd,
    TextDelta,
    parse_output,
    strict_json_schema,
)
from shipyard.spec.model import ModelRoute, TaskSpec
from shipyard.spec.typed_io import output_model
from tests.providers.llm.conftest import MODEL, deadline, make_provider

pytestmark = pytest.mark.llm


class Sentiment(BaseModel):
    sentiment: Literal["positive", "negative", "neutral"]


def hello(max_tokens: int = 8) -> ChatRequest:
    return ChatRequest(
        messages=[ChatMessage("user", "Say hello.")], max_tokens=max_tokens, model=MODEL
    )


def test_chat_completion_returns_text_and_usage(llama_url: str) -> None:
    provider = make_provider("local", llama_url + "/v1")

    result = provider.complete(hello(), deadline=deadline())

    assert isinstance(result.content, str)
    assert result.content
    assert result.usage.prompt_tokens > 0
    assert 0 < result.usage.completion_tokens <= 8
    assert result.finish_reason in {"stop", "length"}
    assert (result.provider, result.model, result.attempts) == ("local", MODEL, 1)
    assert result.latency_ms > 0


def test_strict_json_schema_reply_validates(llama_url: str) -> None:
    provider = make_provider("local", llama_url + "/v1")
    request = ChatRequest(
        messages=[ChatMessage("user", "I love this product! What is the sentiment?")],
        max_tokens=48,
        json_schema=strict_json_schema(Sentiment),
        schema_name="sentiment",
        model=MODEL,
    )

    result = provider.complete(request, deadline=deadline())

    parsed = parse_output(result.content, Sentiment)
    assert isinstance(parsed, Sentiment)
    assert parsed.sentiment in {"positive", "negative", "neutral"}


def test_router_validates_a_task_output_model(llama_url: str) -> None:
    """The output model built from a real task spec goes out as a strict schema and the
    reply comes back as a validated instance of it."""
    spec = TaskSpec.model_validate(
        {
            "name": "mood",
            "version": 1,
            "description": "Mood of a message.",
            "owner": "tests@example.com",
            "kind": "classify",
            "input": {"text": {"type": "string"}},
            "output": {
                "label": {"type": "enum", "values": ["happy", "sad"]},
                # No bounds: llama.cpp grammars do not enforce numeric ranges (validation would).
                "confidence": {"type": "number"},
            },
            "model": {"provider": "local", "model": MODEL},
        }
    )
    model = output_model(spec)
    router = ModelRouter({"local": make_provider("local", llama_url + "/v1")})
    request = ChatRequest(
        messages=[ChatMessage("user", "Classify the mood: 'What a wonderful day!'")],
        max_tokens=48,
    )

    routed = router.complete(spec.model, request, deadline=deadline(), output_model=model)

    assert isinstance(routed.output, model)
    assert routed.output.model_dump()["label"] in {"happy", "sad"}
    assert routed.position == 0
    assert routed.entry.provider == "local"


def test_stream_yields_deltas_then_usage(llama_url: str) -> None:
    provider = make_provider("local", llama_url + "/v1")

    events = list(provider.stream(hello(), deadline=deadline()))

    deltas = [e for e in events if isinstance(e, TextDelta)]
    assert deltas
    assert all(d.text for d in deltas)
    end = events[-1]
    assert isinstance(end, StreamEnd)
    assert sum(isinstance(e, StreamEnd) for e in events) == 1
    assert end.usage.prompt_tokens > 0
    assert 0 < end.usage.completion_tokens <= 8
    assert end.finish_reason in {"stop", "length"}
    assert (end.provider, end.model, end.attempts) == ("local", MODEL, 1)
    collector = StreamCollector()
    for event in events:
        collector.add(event)
    assert collector.result().content == "".join(d.text for d in deltas)


def test_router_stream_names_the_serving_entry(llama_url: str) -> None:
    router = ModelRouter({"local": make_provider("local", llama_url + "/v1")})
    route = ModelRoute(provider="local", model=MODEL)

    events = list(router.stream(route, hello(max_tokens=4), deadline=deadline()))

    end = events[-1]
    assert isinstance(end, StreamEnd)
    assert (end.provider, end.model) == ("local", MODEL)
