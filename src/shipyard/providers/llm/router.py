"""The model router: a spec's model route (primary + ordered fallbacks) -> a reply.

Fallback policy (an entry is "done" once its own retries are spent or its breaker is open):

* timeouts, 429s, 5xx, dropped connections/streams, an open breaker -> next entry;
* 401/403/404 and other 4xx about *this* provider's account or catalogue (unknown model or
  deployment) -> next entry; 400/413/422 (the request itself is wrong) -> raised at once,
  since every provider would refuse it again (see :class:`ProviderRejected`);
* an invalid structured reply is repaired once at the same entry (the validation errors are
  sent back as a user message), then :class:`InvalidModelOutput` is raised - not a fallback:
  a second model is a cost the spec author did not choose for this case;
* a stream falls back only before its first text delta (the caller cannot un-see text).

When every entry failed, :class:`RouteExhausted` carries each entry's error.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace

from pydantic import BaseModel

from shipyard.errors import ConfigError, InvalidModelOutput
from shipyard.observability.metrics import Metrics
from shipyard.providers.llm.errors import ProviderError, RouteExhausted
from shipyard.providers.llm.openai_provider import TokenProvider
from shipyard.providers.llm.pricing import PriceTable, usage_cost
from shipyard.providers.llm.registry import build_providers
from shipyard.providers.llm.resilience import BreakerState, Clock, ResilientProvider
from shipyard.providers.llm.structured import (
    OutputProblems,
    parse_output,
    repair_instruction,
    strict_json_schema,
)
from shipyard.providers.llm.types import (
    ChatMessage,
    ChatProvider,
    ChatRequest,
    ChatResult,
    Deadline,
    StreamEnd,
    StreamEvent,
    Usage,
)
from shipyard.settings import Settings
from shipyard.spec.model import ModelRoute, RouteEntry


@dataclass(frozen=True)
class RoutedResult:
    result: ChatResult
    """The reply used (after a repair, the repaired one)."""
    entry: RouteEntry
    """The route entry that served it."""
    position: int
    """0 for the primary, 1.. for the fallbacks in order."""
    output: BaseModel | None
    """The validated output, when an output model was given."""
    replies: tuple[ChatResult, ...]
    """Every reply received and paid for (two when a reply was repaired)."""
    cost: float | None
    """Cost of all replies; None when a price is not configured."""
    failures: tuple[ProviderError, ...] = ()
    """The errors of the entries tried before this one."""

    @property
    def fallback_used(self) -> bool:
        return self.position > 0

    @property
    def usage(self) -> Usage:
        return Usage(
            prompt_tokens=sum(r.usage.prompt_tokens for r in self.replies),
            completion_tokens=sum(r.usage.completion_tokens for r in self.replies),
        )


def route_entries(route: ModelRoute) -> list[RouteEntry]:
    primary = RouteEntry(provider=route.provider, model=route.model)
    return [primary, *route.fallbacks]


class ModelRouter:
    def __init__(
        self,
        providers: Mapping[str, ChatProvider],
        *,
        prices: PriceTable | None = None,
        metrics: Metrics | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self.providers = dict(providers)
        self.prices = prices or PriceTable()
        self._metrics = metrics
        self._clock = clock

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        metrics: Metrics | None = None,
        token_providers: Mapping[str, TokenProvider] | None = None,
    ) -> ModelRouter:
        return cls(
            build_providers(settings, token_providers=token_providers),
            prices=PriceTable.from_settings(settings),
            metrics=metrics,
        )

    def check_route(self, route: ModelRoute) -> None:
        """ConfigError when the route names a provider that is not configured."""
        unknown = sorted({e.provider for e in route_entries(route)} - set(self.providers))
        if unknown:
            raise ConfigError(
                f"model route names unconfigured provider(s) {', '.join(unknown)}; "
                f"configured: {', '.join(sorted(self.providers)) or 'none'} (SHIPYARD_PROVIDERS)"
            )

    def complete(
        self,
        route: ModelRoute,
        request: ChatRequest,
        *,
        deadline: Deadline,
        output_model: type[BaseModel] | None = None,
    ) -> RoutedResult:
        """The first reply a route entry gives; with ``output_model`` a validated one."""
        self.check_route(route)
        if output_model is not None and request.json_schema is None:
            request = replace(
                request,
                json_schema=strict_json_schema(output_model),
                schema_name=output_model.__name__[:64],
            )
        failures: list[ProviderError] = []
        for position, entry in enumerate(route_entries(route)):
            try:
                served = self._serve(
                    entry, replace(request, model=entry.model), deadline, output_model
                )
            except ProviderError as error:
                failures.append(error)
                if not error.fallback:
                    raise
                if deadline.expired:
                    break  # no time left to try the next entries
                continue
            result, output, replies = served
            return RoutedResult(
                result=result,
                entry=entry,
                position=position,
                output=output,
                replies=replies,
                cost=self.prices.total(replies),
                failures=tuple(failures),
            )
        raise RouteExhausted(failures)

    def stream(
        self, route: ModelRoute, request: ChatRequest, *, deadline: Deadline
    ) -> Iterator[StreamEvent]:
        """Text deltas then a :class:`StreamEnd` naming the provider and model that served.
        A ``json_schema`` is sent but not validated here: collect the stream
        (:class:`StreamCollector`) and call :func:`parse_output` at its end."""
        self.check_route(route)
        failures: list[ProviderError] = []
        for entry in route_entries(route):
            provider = self.providers[entry.provider]
            started = self._clock()
            delivered = False
            try:
                for event in provider.stream(
                    replace(request, model=entry.model), deadline=deadline
                ):
                    if isinstance(event, StreamEnd):
                        self._observe(entry, "ok", self._clock() - started, event.usage)
                    else:
                        delivered = True
                    yield event
            except ProviderError as error:
                self._observe(entry, error.outcome, self._clock() - started, None)
                failures.append(error)
                if delivered or not error.fallback:
                    raise
                if deadline.expired:
                    break
                continue
            return
        raise RouteExhausted(failures)

    def close(self) -> None:
        for provider in self.providers.values():
            close = getattr(provider, "close", None)  # optional: not part of ChatProvider
            if close is not None:
                close()

    def _serve(
        self,
        entry: RouteEntry,
        request: ChatRequest,
        deadline: Deadline,
        output_model: type[BaseModel] | None,
    ) -> tuple[ChatResult, BaseModel | None, tuple[ChatResult, ...]]:
        """One entry: a reply, validated and repaired once when an output model is given."""
        first = self._call(entry, request, deadline)
        if output_model is None:
            self._observe(entry, "ok", first.latency_ms / 1000, first.usage)
            return first, None, (first,)
        checked = _check(first, output_model)
        self._observe_checked(entry, first, checked)
        if isinstance(checked, BaseModel):
            return first, checked, (first,)
        repair = replace(
            request,
            messages=(
                *request.messages,
                ChatMessage("assistant", first.content),
                ChatMessage("user", repair_instruction(checked)),
            ),
        )
        second = self._call(entry, repair, deadline)
        rechecked = _check(second, output_model)
        self._observe_checked(entry, second, rechecked)
        if isinstance(rechecked, BaseModel):
            return second, rechecked, (first, second)
        raise InvalidModelOutput(
            f"{entry.provider}/{entry.model} replied with invalid output twice "
            "(the second time after being told what was wrong)",
            problems=rechecked.problems,
        )

    def _call(self, entry: RouteEntry, request: ChatRequest, deadline: Deadline) -> ChatResult:
        started = self._clock()
        try:
            return self.providers[entry.provider].complete(request, deadline=deadline)
        except ProviderError as error:
            self._observe(entry, error.outcome, self._clock() - started, None)
            raise

    def _observe_checked(
        self, entry: RouteEntry, result: ChatResult, checked: BaseModel | OutputProblems
    ) -> None:
        outcome = "ok" if isinstance(checked, BaseModel) else "invalid_output"
        self._observe(entry, outcome, result.latency_ms / 1000, result.usage)

    def _observe(
        self,
        entry: RouteEntry,
        outcome: str,
        seconds: float,
        usage: Usage | None,
    ) -> None:
        metrics = self._metrics
        if metrics is None:
            return
        provider, model = entry.provider, entry.model
        metrics.llm_calls.labels(provider, model, outcome).inc()
        metrics.llm_latency.labels(provider, model).observe(seconds)
        if usage is not None:
            metrics.llm_tokens.labels(provider, model, "input").inc(usage.prompt_tokens)
            metrics.llm_tokens.labels(provider, model, "output").inc(usage.completion_tokens)
            cost = usage_cost(usage, self.prices.price(provider, model))
            if cost is not None:
                metrics.llm_cost.labels(provider, model).inc(cost)
        target = self.providers.get(provider)
        if isinstance(target, ResilientProvider):
            is_open = target.breaker.state is not BreakerState.CLOSED
            metrics.breaker_open.labels(provider).set(1 if is_open else 0)


def _check(result: ChatResult, output_model: type[BaseModel]) -> BaseModel | OutputProblems:
    try:
        return parse_output(
            result.content, output_model, truncated=result.finish_reason == "length"
        )
    except OutputProblems as problems:
        return problems
