"""Kind ``generate``: the spec's prompt, filled with the input, answered by a chat model.

Outputs are either one free-text ``text`` string (the reply as is; it can be streamed, with
knowledge too: its ``citations`` come in the last event) or
typed fields, in which case the output model's strict JSON Schema is sent as structured output
and the reply is validated against it (see docs/providers.md). The router comes from the
composition root, built on first use so projects without chat tasks never configure one.
With a ``knowledge`` block the reply is grounded in retrieved passages (kinds/grounding.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from shipyard.errors import InvalidInput
from shipyard.governance.budgets import UsageEstimate
from shipyard.kinds import grounding
from shipyard.kinds.base import Example, KindResult, Progress, RunContext, TaskRunner
from shipyard.kinds.llm_structured import LOCAL_ROUTE, ready_router, worst_case
from shipyard.knowledge.chunking import ChunkingOptions
from shipyard.knowledge.types import Passage
from shipyard.providers.llm import (
    ChatRequest,
    Deadline,
    ModelRouter,
    StreamCollector,
    TextDelta,
    render,
    strict_json_schema,
)
from shipyard.spec import TaskSpec, output_model

TEXT_FIELD = "text"


def _model_outputs(spec: TaskSpec) -> TaskSpec:
    """The spec without its ``citations`` output: those come from retrieval, not the model."""
    if grounding.CITATIONS_FIELD not in spec.output:
        return spec
    kept = {n: f for n, f in spec.output.items() if n != grounding.CITATIONS_FIELD}
    return spec.model_copy(update={"output": kept})


def _reply_is_text(spec: TaskSpec) -> bool:
    outputs = _model_outputs(spec).output
    field = outputs.get(TEXT_FIELD)
    return len(outputs) == 1 and field is not None and field.type == "string"


def is_free_text(spec: TaskSpec) -> bool:
    """The model's only output is a ``text`` string: the reply is used (and streamed) as is.
    With knowledge, the ``citations`` come from the whole reply, in the stream's last event."""
    return _reply_is_text(spec)


def served_name(provider: str, model: str) -> str:
    """How runs name the model; the bundled demo model says so wherever a run is shown."""
    name = f"{provider}/{model}"
    return f"{name} (demo quality)" if (provider, model) == LOCAL_ROUTE else name


class GenerateRunner:
    def __init__(
        self,
        spec: TaskSpec,
        router: Callable[[], ModelRouter],
        *,
        local_llm: bool,
        max_stream_chars: int,
        retrieve: grounding.Retrieve | None = None,
    ) -> None:
        assert spec.prompt is not None  # the spec model requires it for this kind
        self._spec = spec
        self._prompt = spec.prompt
        self._router = router
        self._local_llm = local_llm
        self._max_chars = max_stream_chars
        self._retrieve = retrieve
        self._output_model: type[BaseModel] | None = (
            None if _reply_is_text(spec) else output_model(_model_outputs(spec))
        )
        self._query = None if spec.knowledge is None else grounding.query_field(spec)

    @property
    def model_name(self) -> str:
        return served_name(self._spec.model.provider, self._spec.model.model)

    @property
    def artifact(self) -> str | None:
        return None

    @property
    def streams_text(self) -> bool:
        return is_free_text(self._spec)

    def _ready_router(self) -> ModelRouter:
        """The router, once it is known to serve this task's route (else a clear 503)."""
        return ready_router(self._spec, self._router, local_llm=self._local_llm)

    def _passages(self, inputs: Mapping[str, Any], context: RunContext | None) -> list[Passage]:
        """What the caller may see of the task's collections for this input (none without
        knowledge). Retrieval is scoped to the caller: a run without one cannot retrieve."""
        if self._spec.knowledge is None or self._query is None:
            return []
        if context is None or self._retrieve is None:
            raise InvalidInput("a generate task with knowledge runs for a caller")
        query = str(inputs.get(self._query) or "")
        return self._retrieve(context, self._spec.knowledge, query) if query.strip() else []

    def _request(self, inputs: Mapping[str, Any], passages: Sequence[Passage] = ()) -> ChatRequest:
        model = self._output_model
        messages = render(self._prompt, inputs)
        if self._spec.knowledge is not None:
            # Before the task's own user message, so its instruction stays the last word.
            messages.insert(-1, grounding.passages_message(passages))
        return ChatRequest(
            messages=messages,
            max_tokens=self._spec.generation.max_tokens,
            temperature=self._spec.generation.temperature,
            json_schema=None if model is None else strict_json_schema(model),
            schema_name="output" if model is None else model.__name__[:64],
        )

    def estimate(self, inputs: Mapping[str, Any]) -> UsageEstimate:
        """Worst case: every prompt character sent (about 4 per token) and ``max_tokens``
        generated, at the dearest priced route entry (a fallback may serve the run). With
        knowledge, ``top_k`` passages of the largest chunk size are counted in (the estimate
        runs before retrieval)."""
        knowledge = self._spec.knowledge
        extra = 0 if knowledge is None else knowledge.top_k * ChunkingOptions().max_chars
        return worst_case(
            self._spec, self._ready_router(), self._request(inputs), extra_chars=extra
        )

    def _grounding(
        self, inputs: Mapping[str, Any], context: RunContext | None
    ) -> tuple[list[Passage], tuple[str, ...]]:
        """The passages the model is given (screened for injection, redacted for PII) and the
        flags that screening raised."""
        passages, injection = grounding.screen_passages(self._spec, self._passages(inputs, context))
        return grounding.redact_passages(passages, context.redact if context else None), injection

    def _with_citations(self, output: dict[str, Any], passages: list[Passage]) -> dict[str, Any]:
        if grounding.CITATIONS_FIELD in self._spec.output:
            output[grounding.CITATIONS_FIELD] = grounding.citations(output, passages)
        return output

    def run(self, inputs: Mapping[str, Any], context: RunContext | None = None) -> KindResult:
        router = self._ready_router()
        started = time.perf_counter()
        passages, injection = self._grounding(inputs, context)
        routed = router.complete(
            self._spec.model,
            self._request(inputs, passages),
            deadline=Deadline(self._spec.generation.timeout_seconds),
            output_model=self._output_model,
        )
        if routed.output is not None:
            output = routed.output.model_dump(mode="json")
        else:
            output = {TEXT_FIELD: routed.result.content}
        output = self._with_citations(output, passages)
        usage = routed.usage
        return KindResult(
            output=output,
            confidence=None,
            model_ms=(time.perf_counter() - started) * 1000,
            flags=injection,
            usage={
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
            },
            cost=routed.cost,
            model_name=served_name(routed.entry.provider, routed.entry.model),
        )

    def stream(
        self, inputs: Mapping[str, Any], context: RunContext | None = None
    ) -> Generator[TextDelta | KindResult]:
        """Text deltas, then the :class:`KindResult` of the whole reply (with knowledge, its
        citations: only the whole reply says which passages it cites). Stops early (and
        closes the provider's stream) once ``max_stream_chars`` characters were sent."""
        if not self.streams_text:
            raise InvalidInput(f"task {self._spec.name} has typed outputs: it cannot stream")
        router = self._ready_router()
        started = time.perf_counter()
        passages, injection = self._grounding(inputs, context)
        collector = StreamCollector()
        sent = 0
        events = router.stream(
            self._spec.model,
            self._request(inputs, passages),
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
            cost, served = router.prices.cost(result), served_name(result.provider, result.model)
        else:
            # Cut short before the provider reported usage: book the worst case, so budgets
            # never under-count what was paid for.
            worst = self.estimate(inputs)
            generated = self._spec.generation.max_tokens
            tokens = (worst.tokens - generated, generated)
            cost, served = worst.cost, None
        yield KindResult(
            output=self._with_citations({TEXT_FIELD: "".join(collector.parts)}, passages),
            confidence=None,
            model_ms=(time.perf_counter() - started) * 1000,
            flags=(*injection, "truncated") if truncated else injection,
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
        self,
        router: Callable[[], ModelRouter],
        *,
        local_llm: bool,
        max_stream_chars: int,
        retrieve: grounding.Retrieve | None = None,
    ) -> None:
        self._router = router
        self._local_llm = local_llm
        self._max_chars = max_stream_chars
        self._retrieve = retrieve

    def train(
        self, spec: TaskSpec, examples: Sequence[Example], out_dir: Path, progress: Progress
    ) -> dict[str, Any]:
        raise InvalidInput("kind generate has nothing to train: edit its prompt instead")

    def load(self, spec: TaskSpec, artifact_dir: Path | None, artifact: str | None) -> TaskRunner:
        return GenerateRunner(
            spec,
            self._router,
            local_llm=self._local_llm,
            max_stream_chars=self._max_chars,
            retrieve=self._retrieve,
        )
