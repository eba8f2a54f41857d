"""Kind ``generate``: the spec's prompt, filled with the input, answered by a chat model.

Outputs are either one free-text ``text`` string (the reply as is; it can be streamed) or
typed fields, in which case the output model's strict JSON Schema is sent as structured output
and the reply is validated against it (see docs/providers.md). The router comes from the
composition root, built on first use so projects without chat tasks never configure one.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Generator, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from shipyard.errors import InvalidInput, LLMNotConfigured
from shipyard.governance.budgets import CHARS_PER_TOKEN, UsageEstimate
from shipyard.kinds.base import Example, KindResult, Progress, RunContext, TaskRunner
from shipyard.providers.llm import (
    ChatRequest,
    Deadline,
    ModelRouter,
    StreamCollector,
    TextDelta,
    render,
    route_entries,
    strict_json_schema,
)
from shipyard.spec import TaskSpec, output_model

TEXT_FIELD = "text"
LOCAL_ROUTE = ("local", "local-llm")
NO_PROVIDER = (
    "generate needs an LLM provider: configure SHIPYARD_PROVIDERS or opt into the bundled "
    "demo model with SHIPYARD_LOCAL_LLM=true"
)


def is_free_text(spec: TaskSpec) -> bool:
    """The task's only output is a ``text`` string: the reply is used (and streamed) as is."""
    field = spec.output.get(TEXT_FIELD)
    return len(spec.output) == 1 and field is not None and field.type == "string"


class GenerateRunner:
    def __init__(
        self,
        spec: TaskSpec,
        router: Callable[[], ModelRouter],
        *,
        local_llm: bool,
        max_stream_chars: int,
    ) -> None:
        assert spec.prompt is not None  # the spec model requires it for this kind
        self._spec = spec
        self._prompt = spec.prompt
        self._router = router
        self._local_llm = local_llm
        self._max_chars = max_stream_chars
        self._output_model: type[BaseModel] | None = (
            None if is_free_text(spec) else output_model(spec)
        )

    @property
    def model_name(self) -> str:
        name = f"{self._spec.model.provider}/{self._spec.model.model}"
        if (self._spec.model.provider, self._spec.model.model) == LOCAL_ROUTE:
            return f"{name} (demo quality)"  # say so wherever the run is shown
        return name

    @property
    def artifact(self) -> str | None:
        return None

    @property
    def streams_text(self) -> bool:
        return self._output_model is None

    def _ready_router(self) -> ModelRouter:
        """The router, once it is known to serve this task's route (else a clear 503)."""
        entries = route_entries(self._spec.model)
        if any((e.provider, e.model) == LOCAL_ROUTE for e in entries) and not self._local_llm:
            raise LLMNotConfigured(NO_PROVIDER)
        router = self._router()
        missing = sorted({e.provider for e in entries} - set(router.providers))
        if missing:
            raise LLMNotConfigured(
                f"task {self._spec.name} routes to provider(s) {', '.join(missing)} that are "
                f"not configured. {NO_PROVIDER}"
            )
        return router

    def _request(self, inputs: Mapping[str, Any]) -> ChatRequest:
        model = self._output_model
        return ChatRequest(
            messages=render(self._prompt, inputs),
            max_tokens=self._spec.generation.max_tokens,
            temperature=self._spec.generation.temperature,
            json_schema=None if model is None else strict_json_schema(model),
            schema_name="output" if model is None else model.__name__[:64],
        )

    def estimate(self, inputs: Mapping[str, Any]) -> UsageEstimate:
        """Worst case: every prompt character sent (about 4 per token) and ``max_tokens``
        generated, at the dearest priced route entry (a fallback may serve the run)."""
        router = self._ready_router()
        request = self._request(inputs)
        chars = sum(len(message.content) for message in request.messages)
        if request.json_schema is not None:
            chars += len(json.dumps(request.json_schema))
        prompt_tokens = -(-chars // CHARS_PER_TOKEN)
        max_tokens = request.max_tokens
        costs = [
            (prompt_tokens * price.input_per_1k + max_tokens * price.output_per_1k) / 1000
            for entry in route_entries(self._spec.model)
            if (price := router.prices.price(entry.provider, entry.model)) is not None
        ]
        return UsageEstimate(prompt_tokens + max_tokens, max(costs) if costs else None)

    def run(self, inputs: Mapping[str, Any], context: RunContext | None = None) -> KindResult:
        router = self._ready_router()
        started = time.perf_counter()
        routed = router.complete(
            self._spec.model,
            self._request(inputs),
            deadline=Deadline(self._spec.generation.timeout_seconds),
            output_model=self._output_model,
        )
        if routed.output is not None:
            output = routed.output.model_dump(mode="json")
        else:
            output = {TEXT_FIELD: routed.result.content}
        usage = routed.usage
        return KindResult(
            output=output,
            confidence=None,
            model_ms=(time.perf_counter() - started) * 1000,
            usage={
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
            },
            cost=routed.cost,
            model_name=f"{routed.entry.provider}/{routed.entry.model}",
        )

    def stream(self, inputs: Mapping[str, Any]) -> Generator[TextDelta | KindResult]:
        """Text deltas, then the :class:`KindResult` of the whole reply. Stops early (and
        closes the provider's stream) once ``max_stream_chars`` characters were sent."""
        if not self.streams_text:
            raise InvalidInput(f"task {self._spec.name} has typed outputs: it cannot stream")
        router = self._ready_router()
        started = time.perf_counter()
        collector = StreamCollector()
        sent = 0
        events = router.stream(
            self._spec.model,
            self._request(inputs),
            deadline=Deadline(self._spec.generation.timeout_seconds),
        )
        truncated = False
        try:
            for event in events:
                if isinstance(event, TextDelta):
                    text = event.text[: self._max_chars - sent]
                    sent += len(text)
                    collector.add(TextDelta(text))
                    if text:
                        yield TextDelta(text)
                    if sent >= self._max_chars:
                        truncated = True
                        break
                else:
                    collector.add(event)
        finally:
            close = getattr(events, "close", None)
            if close is not None:
                close()  # drops the provider connection when we stop early
        if collector.end is not None:
            result = collector.result()
            usage = result.usage
            tokens = (usage.prompt_tokens, usage.completion_tokens)
            cost, served = router.prices.cost(result), f"{result.provider}/{result.model}"
        else:
            # Cut short before the provider reported usage: book the worst case, so budgets
            # never under-count what was paid for.
            worst = self.estimate(inputs)
            generated = self._spec.generation.max_tokens
            tokens = (worst.tokens - generated, generated)
            cost, served = worst.cost, None
        yield KindResult(
            output={TEXT_FIELD: "".join(collector.parts)},
            confidence=None,
            model_ms=(time.perf_counter() - started) * 1000,
            flags=("truncated",) if truncated else (),
            usage={"prompt_tokens": tokens[0], "completion_tokens": tokens[1]},
            cost=cost,
            model_name=served,
        )

    def run_many(
        self, batch: Sequence[Mapping[str, Any]], context: RunContext | None = None
    ) -> list[KindResult]:
        return [self.run(inputs, context) for inputs in batch]


class GenerateKind:
    name = "generate"
    needs_training = False

    def __init__(
        self, router: Callable[[], ModelRouter], *, local_llm: bool, max_stream_chars: int
    ) -> None:
        self._router = router
        self._local_llm = local_llm
        self._max_chars = max_stream_chars

    def train(
        self, spec: TaskSpec, examples: Sequence[Example], out_dir: Path, progress: Progress
    ) -> dict[str, Any]:
        raise InvalidInput("kind generate has nothing to train: edit its prompt instead")

    def load(self, spec: TaskSpec, artifact_dir: Path | None, artifact: str | None) -> TaskRunner:
        return GenerateRunner(
            spec, self._router, local_llm=self._local_llm, max_stream_chars=self._max_chars
        )
