"""``extract``: typed fields (slots) copied out of a text, each null when it is not mentioned.

Offline default model (``local`` / ``crf-span-tagger``): a CRF sequence tagger trained from
labelled character spans (see providers/local/span_tagger.py). Training rows hold the text
and, in the ``training.label`` column, a list of ``{slot, start, end}`` spans (a JSON list in
JSONL, or a JSON string in CSV); ``slot`` names a string output field of the task.

Any other model route is a chat model (kinds/llm_structured.py): nothing to train, the spec's
prompt answered as structured output, and only values found verbatim in the text are kept.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from shipyard.errors import ConfigError, DataInvalid, FieldProblem, InvalidInput, ModelNotReady
from shipyard.kinds.base import Example, KindResult, Progress, RunContext, TaskRunner
from shipyard.kinds.llm_structured import LLMExtractRunner, RouterFactory, is_llm_route
from shipyard.providers.local.span_features import Span
from shipyard.providers.local.span_tagger import SpanTagger, train_span_tagger
from shipyard.spec import FieldSpec, TaskSpec

LOCAL_MODEL = "crf-span-tagger"
CONFIDENCE = "confidence"
MAX_REPORTED_PROBLEMS = 20


def slot_fields(spec: TaskSpec) -> list[str]:
    """The output fields filled from the text (every output but ``confidence``)."""
    return [name for name in spec.output if name != CONFIDENCE]


def text_field(spec: TaskSpec) -> str:
    """The one string input the spans point into: offsets are only meaningful in one text."""
    strings = [name for name, field in spec.input.items() if field.type == "string"]
    if len(strings) != 1:
        raise ConfigError(
            f"task {spec.name}: kind extract needs exactly one string input field "
            f"(the text spans point into), not {len(strings)}"
        )
    return strings[0]


def _parse_spans(value: Any) -> Any:
    if isinstance(value, str):  # a CSV cell holds the list as JSON text
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            return exc  # reported by the caller, with the line
    return value


def _span_problem(span: Any, text: str, slots: Sequence[str]) -> str | None:
    """Why one span cannot be learned from, or None when it is fine."""
    if not isinstance(span, Mapping):
        return f"a span must be an object with slot, start and end, not {span!r}"
    slot, start, end = span.get("slot"), span.get("start"), span.get("end")
    if slot not in slots:
        return f"slot {slot!r} is not a declared output field ({', '.join(slots)})"
    # bool is an int subclass; "start": true is a data error, not offset 1.
    if not isinstance(start, int) or not isinstance(end, int) or bool in (type(start), type(end)):
        return f"slot {slot!r}: start and end must be whole numbers"
    if not 0 <= start < end <= len(text):
        return f"slot {slot!r}: [{start}, {end}) is not a non-empty range inside the text"
    value = span.get("value")
    if value is not None and value != text[start:end]:
        return f"slot {slot!r}: value {value!r} is not the text at [{start}, {end})"
    return None


def training_spans(
    spec: TaskSpec, examples: Sequence[Example], column: str, file: str | None = None
) -> tuple[list[str], list[list[Span]]]:
    """Texts and checked gold spans of the training rows; every bad span is reported with
    its line, so a typo in a slot name never trains a model that silently ignores it."""
    field, slots = text_field(spec), slot_fields(spec)
    texts: list[str] = []
    spans: list[list[Span]] = []
    problems: list[FieldProblem] = []
    for example in examples:
        text = str(example.inputs[field])
        raw = _parse_spans(example.expected["label"])
        if not isinstance(raw, list):
            problem = "must be a JSON list of spans"
            problems.append(FieldProblem(column, problem, file=file, line=example.line))
            continue
        row: list[Span] = []
        for span in raw:
            issue = _span_problem(span, text, slots)
            if issue is not None:
                problems.append(FieldProblem(column, issue, file=file, line=example.line))
            else:
                row.append(Span(str(span["slot"]), int(span["start"]), int(span["end"])))
        texts.append(text)
        spans.append(row)
    if problems:
        raise DataInvalid(
            f"{len(problems)} training span(s) cannot be used", problems[:MAX_REPORTED_PROBLEMS]
        )
    return texts, spans


def _fits(value: str, field: FieldSpec) -> bool:
    """Whether a value meets the field's length limits (else it is left out, not an error)."""
    too_short = field.min_length is not None and len(value) < field.min_length
    return not too_short and (field.max_length is None or len(value) <= field.max_length)


class ExtractRunner:
    def __init__(self, spec: TaskSpec, model: SpanTagger, artifact: str | None) -> None:
        self._spec = spec
        self._model = model
        self._artifact = artifact
        self._field = text_field(spec)
        self._slots = slot_fields(spec)

    @property
    def model_name(self) -> str:
        return f"{self._spec.model.provider}/{self._spec.model.model}"

    @property
    def artifact(self) -> str | None:
        return self._artifact

    def run(self, inputs: Mapping[str, Any], context: RunContext | None = None) -> KindResult:
        return self.run_many([inputs])[0]

    def run_many(
        self, batch: Sequence[Mapping[str, Any]], context: RunContext | None = None
    ) -> list[KindResult]:
        results = []
        for inputs in batch:
            started = time.perf_counter()
            text = str(inputs.get(self._field) or "")
            tagging = self._model.tag(text)
            output: dict[str, Any] = dict.fromkeys(self._slots)
            # One value per field: the longest span of its slot, the first of equal length.
            for span in sorted(tagging.spans, key=lambda s: (-(s.end - s.start), s.start)):
                value = text[span.start : span.end]
                free = span.slot in output and output[span.slot] is None
                if free and _fits(value, self._spec.output[span.slot]):
                    output[span.slot] = value
            confidence = round(tagging.probability, 4)
            if CONFIDENCE in self._spec.output:
                output[CONFIDENCE] = confidence
            model_ms = (time.perf_counter() - started) * 1000
            results.append(KindResult(output, confidence, model_ms))
        return results


class ExtractKind:
    name = "extract"
    needs_training = True  # the offline tagger; see trains() for a chat-model route

    def __init__(self, router: RouterFactory | None = None, *, local_llm: bool = False) -> None:
        self._router = router  # None: no chat-model routes (e.g. tools without providers)
        self._local_llm = local_llm

    def trains(self, spec: TaskSpec) -> bool:
        return not is_llm_route(spec, LOCAL_MODEL)

    def _check(self, spec: TaskSpec) -> None:
        text_field(spec)

    def train(
        self, spec: TaskSpec, examples: Sequence[Example], out_dir: Path, progress: Progress
    ) -> dict[str, Any]:
        self._check(spec)
        if not self.trains(spec):
            raise InvalidInput(f"task {spec.name} runs on a chat model: edit its prompt instead")
        training = spec.training
        column, file = (training.label, training.path) if training else ("label", None)
        texts, spans = training_spans(spec, examples, column, file)
        model = train_span_tagger(texts, spans, slot_fields(spec), progress=progress)
        model.save(out_dir)
        return model.metadata()

    def load(self, spec: TaskSpec, artifact_dir: Path | None, artifact: str | None) -> TaskRunner:
        self._check(spec)
        if not self.trains(spec):
            if self._router is None:
                raise ConfigError(f"task {spec.name}: no chat-model router is available")
            outputs = spec.output
            return LLMExtractRunner(
                spec,
                self._router,
                text_field=text_field(spec),
                slots=slot_fields(spec),
                fits=lambda slot, value: _fits(value, outputs[slot]),
                local_llm=self._local_llm,
            )
        if artifact_dir is None:
            raise ModelNotReady(
                f"task {spec.name} v{spec.version} has no trained model; "
                f"run `shipyard train {spec.name}`"
            )
        return ExtractRunner(spec, SpanTagger.load(artifact_dir), artifact)
