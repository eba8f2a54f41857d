"""The chat-model routes of kinds ``extract`` and ``decide``: the spec's prompt, answered as
structured output, then checked against what an offline model could never get wrong.

* extract: every extracted value must occur verbatim in the input text. A value that does not
  is set to null and the run is flagged ``unsupported_value``: an extractor must not invent.
* decide: the model picks an option and writes a rationale; the nearest past cases (when the
  task has training data) are quoted to it as data and returned as the evidence. A chat model
  gives no calibrated confidence, so ``confidence`` is null and every run goes to review.

extract.py and decide.py only choose between their offline model and these runners.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, create_model

from shipyard.errors import LLMNotConfigured
from shipyard.governance.budgets import CHARS_PER_TOKEN, UsageEstimate
from shipyard.kinds.base import KindResult, RunContext
from shipyard.providers.llm import (
    ChatMessage,
    ChatRequest,
    Deadline,
    ModelRouter,
    RoutedResult,
    quote_passages,
    render,
    route_entries,
    strict_json_schema,
)
from shipyard.spec import TaskSpec

LOCAL_ROUTE = ("local", "local-llm")
UNSUPPORTED_VALUE = "unsupported_value"
PROVIDER_HINT = (
    "configure SHIPYARD_PROVIDERS or opt into the bundled demo model with SHIPYARD_LOCAL_LLM=true"
)

RouterFactory = Callable[[], ModelRouter]


def is_llm_route(spec: TaskSpec, offline_model: str) -> bool:
    """Whether the task is served by a chat model rather than the kind's offline model."""
    return (spec.model.provider, spec.model.model) != ("local", offline_model)


def ready_router(spec: TaskSpec, router: RouterFactory, *, local_llm: bool) -> ModelRouter:
    """The router, once it is known to serve every entry of the task's route (else a 503)."""
    entries = route_entries(spec.model)
    if any((e.provider, e.model) == LOCAL_ROUTE for e in entries) and not local_llm:
        raise LLMNotConfigured(f"task {spec.name} needs an LLM provider: {PROVIDER_HINT}")
    found = router()
    missing = sorted({e.provider for e in entries} - set(found.providers))
    if missing:
        raise LLMNotConfigured(
            f"task {spec.name} routes to provider(s) {', '.join(missing)} that are not "
            f"configured: {PROVIDER_HINT}"
        )
    return found


def worst_case(
    spec: TaskSpec, router: ModelRouter, request: ChatRequest, *, extra_chars: int = 0
) -> UsageEstimate:
    """Every prompt character sent (about 4 per token), plus ``extra_chars`` not known yet
    (e.g. passages retrieved later), and ``max_tokens`` generated, at the dearest priced
    route entry (a fallback may serve the run)."""
    chars = extra_chars + sum(len(message.content) for message in request.messages)
    if request.json_schema is not None:
        chars += len(json.dumps(request.json_schema))
    prompt_tokens = -(-chars // CHARS_PER_TOKEN)
    costs = [
        (prompt_tokens * price.input_per_1k + request.max_tokens * price.output_per_1k) / 1000
        for entry in route_entries(spec.model)
        if (price := router.prices.price(entry.provider, entry.model)) is not None
    ]
    return UsageEstimate(prompt_tokens + request.max_tokens, max(costs) if costs else None)


def accounting(routed: RoutedResult) -> dict[str, Any]:
    """The KindResult fields of a chat-model call: tokens, cost and the entry that served."""
    usage = routed.usage
    return {
        "usage": {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
        },
        "cost": routed.cost,
        "model_name": f"{routed.entry.provider}/{routed.entry.model}",
    }


class StructuredRunner:
    """Shared by both kinds: render, call the route with a strict schema, account usage."""

    def __init__(
        self, spec: TaskSpec, router: RouterFactory, reply: type[BaseModel], *, local_llm: bool
    ) -> None:
        if spec.prompt is None:  # the spec rules require it; guard loads of unchecked specs
            raise LLMNotConfigured(f"task {spec.name}: a chat-model route needs a 'prompt'")
        self._spec = spec
        self._prompt = spec.prompt
        self._router = router
        self._reply = reply
        self._local_llm = local_llm

    @property
    def model_name(self) -> str:
        return f"{self._spec.model.provider}/{self._spec.model.model}"

    @property
    def artifact(self) -> str | None:
        return None

    def _request(self, inputs: Mapping[str, Any], passages: Sequence[str] = ()) -> ChatRequest:
        messages = render(self._prompt, inputs)
        if passages:
            # Before the task's own user message, so its instruction stays the last word.
            messages.insert(-1, ChatMessage("user", quote_passages(passages)))
        return ChatRequest(
            messages=messages,
            max_tokens=self._spec.generation.max_tokens,
            temperature=self._spec.generation.temperature,
            json_schema=strict_json_schema(self._reply),
            schema_name=self._reply.__name__[:64],
        )

    def estimate(self, inputs: Mapping[str, Any]) -> UsageEstimate:
        router = ready_router(self._spec, self._router, local_llm=self._local_llm)
        return worst_case(self._spec, router, self._request(inputs))

    def _call(
        self, inputs: Mapping[str, Any], passages: Sequence[str] = ()
    ) -> tuple[dict[str, Any], RoutedResult]:
        router = ready_router(self._spec, self._router, local_llm=self._local_llm)
        routed = router.complete(
            self._spec.model,
            self._request(inputs, passages),
            deadline=Deadline(self._spec.generation.timeout_seconds),
            output_model=self._reply,
        )
        assert routed.output is not None  # an output model always yields a validated output
        return routed.output.model_dump(mode="json"), routed

    def run(self, inputs: Mapping[str, Any], context: RunContext | None = None) -> KindResult:
        raise NotImplementedError

    def run_many(
        self, batch: Sequence[Mapping[str, Any]], context: RunContext | None = None
    ) -> list[KindResult]:
        return [self.run(inputs, context) for inputs in batch]


def _reply_model(name: str, fields: Mapping[str, Any]) -> type[BaseModel]:
    config = ConfigDict(extra="forbid")
    model: type[BaseModel] = create_model(name, __config__=config, **fields)
    return model


class LLMExtractRunner(StructuredRunner):
    def __init__(
        self,
        spec: TaskSpec,
        router: RouterFactory,
        *,
        text_field: str,
        slots: Sequence[str],
        fits: Callable[[str, str], bool],
        local_llm: bool,
    ) -> None:
        # Plain optional strings: length limits are applied after the verbatim check, so a
        # too-long value is dropped like an unsupported one instead of failing the run.
        reply = _reply_model("ExtractedFields", dict.fromkeys(slots, (str | None, None)))
        super().__init__(spec, router, reply, local_llm=local_llm)
        self._field = text_field
        self._slots = list(slots)
        self._fits = fits

    def run(self, inputs: Mapping[str, Any], context: RunContext | None = None) -> KindResult:
        started = time.perf_counter()
        fields, routed = self._call(inputs)
        text = str(inputs.get(self._field) or "")
        output: dict[str, Any] = {}
        unsupported = False
        for slot in self._slots:
            value = fields.get(slot)
            if isinstance(value, str):
                value = value.strip()
            if not value:
                output[slot] = None
            elif value in text and self._fits(slot, value):
                output[slot] = value
            else:
                output[slot], unsupported = None, True
        return KindResult(
            output,
            None,  # a chat model's own word is no calibrated probability
            (time.perf_counter() - started) * 1000,
            flags=(UNSUPPORTED_VALUE,) if unsupported else (),
            **accounting(routed),
        )


@dataclass(frozen=True)
class Precedent:
    """A past case found for the input, as evidence (a Citation dict) and as prompt text."""

    citation: dict[str, Any]
    decision: str


class LLMDecideRunner(StructuredRunner):
    def __init__(
        self,
        spec: TaskSpec,
        router: RouterFactory,
        *,
        options: Sequence[str],
        precedents: Callable[[Mapping[str, Any]], list[Precedent]],
        local_llm: bool,
    ) -> None:
        choice = Literal[tuple(options)]  # type: ignore[valid-type]
        reply = _reply_model("Decision", {"decision": (choice, ...), "rationale": (str, ...)})
        super().__init__(spec, router, reply, local_llm=local_llm)
        self._precedents = precedents

    @staticmethod
    def _quoted(found: Sequence[Precedent]) -> list[str]:
        return [f"Past case, decided '{p.decision}': {p.citation['quote']}" for p in found]

    def estimate(self, inputs: Mapping[str, Any]) -> UsageEstimate:
        router = ready_router(self._spec, self._router, local_llm=self._local_llm)
        passages = self._quoted(self._precedents(inputs))
        return worst_case(self._spec, router, self._request(inputs, passages))

    def run(self, inputs: Mapping[str, Any], context: RunContext | None = None) -> KindResult:
        started = time.perf_counter()
        found = self._precedents(inputs)
        fields, routed = self._call(inputs, self._quoted(found))
        evidence = [p.citation for p in found]
        output = {
            "decision": fields["decision"],
            "confidence": None,
            "rationale": fields["rationale"],
            "evidence": evidence,
        }
        return KindResult(
            output,
            None,
            (time.perf_counter() - started) * 1000,
            force_review=True,  # no calibrated confidence: a person confirms every decision
            **accounting(routed),
        )
