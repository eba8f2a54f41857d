"""Vendor-neutral chat types: what the rest of Shipyard sees of an LLM call.

Nothing here imports a vendor SDK, so task kinds and services depend on these shapes only and
a new provider is one class implementing :class:`ChatProvider`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

Role = Literal["system", "user", "assistant"]


class Deadline:
    """The time left for a whole call, retries and fallbacks included (a total timeout)."""

    def __init__(self, seconds: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._end = clock() + seconds

    def remaining(self) -> float:
        return max(0.0, self._end - self._clock())

    @property
    def expired(self) -> bool:
        return self.remaining() <= 0.0

    def __repr__(self) -> str:
        return f"Deadline({self.seconds}s, {self.remaining():.3f}s left)"


@dataclass(frozen=True)
class ChatMessage:
    role: Role
    content: str


@dataclass(frozen=True, kw_only=True)
class ChatRequest:
    """One chat call. ``model`` is filled in per route entry by the router; credentials and
    endpoints are never part of a request (they come from the provider's settings)."""

    messages: Sequence[ChatMessage]
    max_tokens: int
    temperature: float = 0.0
    json_schema: dict[str, Any] | None = None
    """When set the reply must be JSON matching it (sent as a strict ``json_schema``)."""
    schema_name: str = "output"
    stream: bool = False
    """The caller wants the reply as a stream (the service picks ``stream()`` for it)."""
    model: str = ""

    def __post_init__(self) -> None:
        # Accept a list for convenience but keep the request immutable (shared across retries).
        object.__setattr__(self, "messages", tuple(self.messages))


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, kw_only=True)
class ChatResult:
    """A finished reply. ``model`` is the model name that was requested (the route entry's),
    not whatever the server reports, so prices and metric labels stay stable."""

    content: str
    usage: Usage
    model: str
    provider: str
    finish_reason: str | None
    attempts: int = 1
    latency_ms: float = 0.0


@dataclass(frozen=True)
class TextDelta:
    """A piece of the reply's text, in order."""

    text: str


@dataclass(frozen=True, kw_only=True)
class StreamEnd:
    """The last event of a stream: usage and why generation stopped."""

    usage: Usage
    finish_reason: str | None
    model: str
    provider: str
    attempts: int = 1
    latency_ms: float = 0.0


StreamEvent = TextDelta | StreamEnd


@runtime_checkable
class ChatProvider(Protocol):
    """Where a chat model runs. ``complete`` and ``stream`` raise only the errors of
    :mod:`shipyard.providers.llm.errors`, and never take longer than ``deadline`` allows."""

    name: str

    def complete(self, request: ChatRequest, *, deadline: Deadline) -> ChatResult: ...

    def stream(self, request: ChatRequest, *, deadline: Deadline) -> Iterator[StreamEvent]: ...


@dataclass
class StreamCollector:
    """Folds stream events into a :class:`ChatResult` (for callers that stream but also need
    the whole reply, e.g. to validate it at the end)."""

    parts: list[str] = field(default_factory=list)
    end: StreamEnd | None = None

    def add(self, event: StreamEvent) -> None:
        if isinstance(event, TextDelta):
            self.parts.append(event.text)
        else:
            self.end = event

    def result(self) -> ChatResult:
        if self.end is None:
            raise ValueError("the stream has not ended")
        end = self.end
        return ChatResult(
            content="".join(self.parts),
            usage=end.usage,
            model=end.model,
            provider=end.provider,
            finish_reason=end.finish_reason,
            attempts=end.attempts,
            latency_ms=end.latency_ms,
        )
