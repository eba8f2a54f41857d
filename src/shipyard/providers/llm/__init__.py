"""Chat models behind OpenAI, Azure OpenAI and OpenAI-compatible servers, with retries,
deadlines, circuit breakers, fallbacks, structured output and cost accounting written once.

Build a router from settings (``ModelRouter.from_settings``) and call it with a spec's model
route; see docs/providers.md.
"""

from shipyard.providers.llm.errors import (
    ProviderCircuitOpen,
    ProviderError,
    ProviderRateLimited,
    ProviderRejected,
    ProviderTimeout,
    ProviderUnavailable,
    RouteExhausted,
)
from shipyard.providers.llm.openai_provider import OpenAIProvider
from shipyard.providers.llm.pricing import PriceTable, usage_cost
from shipyard.providers.llm.prompts import Passage, quote_passages, render, render_template
from shipyard.providers.llm.registry import build_providers, resilient
from shipyard.providers.llm.resilience import (
    BreakerState,
    CircuitBreaker,
    ResilientProvider,
    RetryPolicy,
    parse_retry_after,
)
from shipyard.providers.llm.router import ModelRouter, RoutedResult, route_entries
from shipyard.providers.llm.structured import OutputProblems, parse_output, strict_json_schema
from shipyard.providers.llm.types import (
    ChatMessage,
    ChatProvider,
    ChatRequest,
    ChatResult,
    Deadline,
    StreamCollector,
    StreamEnd,
    StreamEvent,
    TextDelta,
    Usage,
)

__all__ = [
    "BreakerState",
    "ChatMessage",
    "ChatProvider",
    "ChatRequest",
    "ChatResult",
    "CircuitBreaker",
    "Deadline",
    "ModelRouter",
    "OpenAIProvider",
    "OutputProblems",
    "Passage",
    "PriceTable",
    "ProviderCircuitOpen",
    "ProviderError",
    "ProviderRateLimited",
    "ProviderRejected",
    "ProviderTimeout",
    "ProviderUnavailable",
    "ResilientProvider",
    "RetryPolicy",
    "RouteExhausted",
    "RoutedResult",
    "StreamCollector",
    "StreamEnd",
    "StreamEvent",
    "TextDelta",
    "Usage",
    "build_providers",
    "parse_output",
    "parse_retry_after",
    "quote_passages",
    "render",
    "render_template",
    "resilient",
    "route_entries",
    "strict_json_schema",
    "usage_cost",
]
