"""The task spec format as Pydantic models.

Every model forbids unknown keys (a typo is an error, not a silently ignored setting), is
strict (YAML ``"1"`` is not the integer 1) and frozen (one loaded spec is shared by the API,
workers and the registry). Field descriptions feed the published JSON Schema, so they are
written for spec authors. Rules that span fields report the exact location of the offending
key, so the loader can point at the right YAML line.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Collection, Mapping
from types import MappingProxyType
from typing import Annotated, Any, Final, Literal, Self

from pydantic import BaseModel, Field, ValidationInfo, field_validator, model_validator

from shipyard.spec.constraints import (
    Column,
    DataPath,
    DirPath,
    FieldName,
    Identifier,
    JsonPath,
    ModelName,
    Problem,
    ProviderName,
    Slug,
    SpecModel,
    ThresholdText,
    raise_problems,
)
from shipyard.spec.decide_output import decide_output
from shipyard.spec.llm_routes import generate_output, route_problems
from shipyard.spec.pii import InjectionPolicy, PiiSpec
from shipyard.spec.thresholds import Threshold, parse_threshold

DEFAULT_KINDS: Final[frozenset[str]] = frozenset(
    {"classify", "answer", "extract", "decide", "generate"}
)
"""Kinds accepted when the validation context does not name any (``{"kinds": [...]}``)."""

FieldType = Literal["string", "integer", "number", "boolean", "enum", "list", "citations"]
ItemType = Literal["string", "integer", "number", "boolean"]
Role = Literal["admin", "operator", "reviewer", "caller"]

_OPTIONS: Final[Mapping[str, frozenset[str]]] = MappingProxyType(
    {
        "string": frozenset({"min_length", "max_length"}),
        "integer": frozenset({"minimum", "maximum"}),
        "number": frozenset({"minimum", "maximum"}),
        "boolean": frozenset(),
        "enum": frozenset({"values", "values_from"}),
        "list": frozenset({"items", "max_items"}),
        # A list of citation objects (document_id, title, chunk, quote, start, end).
        "citations": frozenset({"max_items"}),
    }
)
_ALL_OPTIONS: Final = frozenset[str]().union(*_OPTIONS.values())


class FieldSpec(SpecModel):
    """One typed field of a task's input or output; becomes a field of the API schema."""

    type: FieldType = Field(description="Value type of the field.")
    description: str = Field(default="", description="Shown in the API schema and console.")
    required: bool = Field(default=True, description="Whether callers must provide the field.")
    min_length: int | None = Field(default=None, ge=0, description="string: fewest characters.")
    max_length: int | None = Field(default=None, ge=1, description="string: most characters.")
    minimum: float | None = Field(default=None, description="integer/number: lowest value.")
    maximum: float | None = Field(default=None, description="integer/number: highest value.")
    values: list[Annotated[str, Field(min_length=1)]] | None = Field(
        default=None, min_length=1, description="enum: the allowed values, listed inline."
    )
    values_from: JsonPath | None = Field(
        default=None,
        description="enum: path (relative to the project folder) of a JSON list of values; "
        "resolved into `values` when the spec is loaded.",
    )
    items: ItemType | None = Field(default=None, description="list: type of every item.")
    max_items: int | None = Field(default=None, ge=1, description="list/citations: most items.")

    @model_validator(mode="after")
    def _check_options(self) -> Self:
        problems: list[Problem] = []
        allowed = _OPTIONS[self.type]
        for option in sorted(_ALL_OPTIONS - allowed):
            if getattr(self, option) is not None:
                hint = ", ".join(sorted(allowed)) or "none"
                problems.append(
                    ((option,), f"does not apply to type '{self.type}' (its options: {hint})")
                )
        if self.type == "enum":
            if (self.values is None) == (self.values_from is None):
                problems.append(((), "an enum needs exactly one of 'values' or 'values_from'"))
            if self.values is not None and len(set(self.values)) != len(self.values):
                problems.append((("values",), "values must be unique"))
        if self.type == "list" and self.items is None:
            problems.append(((), "a list needs 'items' (string, integer, number or boolean)"))
        problems += _check_range(self, "min_length", "max_length")
        problems += _check_range(self, "minimum", "maximum")
        if self.type == "integer":
            for bound in ("minimum", "maximum"):
                value = getattr(self, bound)
                if value is not None and not float(value).is_integer():
                    problems.append(((bound,), "must be a whole number for an integer field"))
        raise_problems("FieldSpec", problems)
        return self


def template_fields(template: str) -> list[str]:
    """The ``{field}`` names of a prompt template; anything but a plain name (``{a.b}``,
    ``{a[0]}``, a conversion or format spec) is returned as written so it is refused."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError:
        return ["<unbalanced braces>"]
    names = []
    for _text, name, spec, conversion in parsed:
        if name is None:
            continue
        if spec or conversion or not name.isidentifier():
            names.append(
                name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "")
            )
        else:
            names.append(name)
    return names


def _check_range(spec: BaseModel, low: str, high: str) -> list[Problem]:
    lo, hi = getattr(spec, low), getattr(spec, high)
    if lo is not None and hi is not None and lo > hi:
        return [((low,), f"{low} ({lo}) is greater than {high} ({hi})")]
    return []


class RouteEntry(SpecModel):
    """One place a model can run: a provider and a model name it serves."""

    provider: ProviderName = Field(description="Provider name, e.g. 'local' or 'openai'.")
    model: ModelName = Field(description="Model name at that provider.")


class ModelRoute(RouteEntry):
    """The primary model and the fallbacks tried, in order, when it fails."""

    fallbacks: list[RouteEntry] = Field(
        default=[], description="Tried in order when the primary model fails or times out."
    )

    @model_validator(mode="after")
    def _check_fallbacks(self) -> Self:
        seen = {(self.provider, self.model)}
        problems: list[Problem] = []
        for index, entry in enumerate(self.fallbacks):
            key = (entry.provider, entry.model)
            if key in seen:
                problems.append((("fallbacks", index), "repeats an earlier route entry"))
            seen.add(key)
        raise_problems("ModelRoute", problems)
        return self


class TrainingSpec(SpecModel):
    """Where a trainable model (e.g. the local classifier) learns from."""

    path: DataPath = Field(description="CSV or JSONL file, relative to the project folder.")
    input: dict[FieldName, Column] = Field(
        min_length=1, description="Task input field -> data column holding it."
    )
    label: Column = Field(description="Data column holding the expected label.")
    seed: int = Field(default=0, description="Random seed, so training is reproducible.")


class PolicySpec(SpecModel):
    """Who may run the task and when a human must look at the result."""

    roles: list[Role] = Field(
        default=["caller", "operator", "admin"],
        min_length=1,
        description="Roles allowed to run the task.",
    )
    review_below: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Runs with confidence below this go to the review queue (needs_review).",
    )
    max_input_chars: int | None = Field(
        default=None, ge=1, description="Reject inputs whose text fields total more characters."
    )
    review_labels: list[str] = Field(
        default=[],
        description=(
            "Output labels that always go to review (needs_review) whatever the confidence, "
            "e.g. an out-of-scope label that must never be routed automatically."
        ),
    )

    @field_validator("roles")
    @classmethod
    def _unique_roles(cls, roles: list[str]) -> list[str]:
        if len(set(roles)) != len(roles):
            raise ValueError("roles must be unique")
        return roles


class KnowledgeSpec(SpecModel):
    """Where a knowledge task retrieves from and how it decides to answer or abstain."""

    collections: list[Slug] = Field(
        min_length=1, description="Collections (of the caller's tenant) searched for evidence."
    )
    top_k: int = Field(default=5, ge=1, le=50, description="Passages the answer may draw on.")
    candidates: int = Field(
        default=50, ge=1, le=500, description="Candidates per retriever (BM25, dense) fused."
    )
    abstain_below: float = Field(
        default=0.35,
        ge=0,
        le=1,
        description="Answer only when the evidence score reaches this; else answerable: false.",
    )
    max_sentences: int = Field(
        default=2, ge=1, le=10, description="Most quoted sentences in an extractive answer."
    )

    @field_validator("collections")
    @classmethod
    def _unique_collections(cls, collections: list[str]) -> list[str]:
        if len(set(collections)) != len(collections):
            raise ValueError("collections must be unique")
        return collections


class PromptSpec(SpecModel):
    """The prompt for a task served by a chat model. Templates name input fields as
    ``{field}``; nothing else is evaluated (no attribute access, indexing or code)."""

    system: str = Field(default="", description="System message: the model's instructions.")
    user: str = Field(
        min_length=1,
        description="User message template, e.g. 'Extract the parties from: {text}'.",
    )


class GenerationSpec(SpecModel):
    """Limits for a chat model's reply."""

    max_tokens: int = Field(default=512, ge=1, le=32_000, description="Most tokens generated.")
    temperature: float = Field(default=0.0, ge=0, le=2, description="Sampling temperature.")
    timeout_seconds: float = Field(
        default=60, gt=0, le=600, description="Longest a whole model call (with retries) may take."
    )


class DatasetSpec(SpecModel):
    """An evaluation dataset and how its columns map to the task's fields."""

    path: DataPath = Field(description="CSV or JSONL file, relative to the project folder.")
    input: dict[FieldName, Column] = Field(
        min_length=1, description="Task input field -> data column holding it."
    )
    expected: dict[FieldName, Column] = Field(
        min_length=1, description="Task output field -> data column holding the expected value."
    )


class EvaluationSpec(SpecModel):
    """The evaluation set and the gates a version must pass before it can be promoted."""

    dataset: DatasetSpec = Field(description="The evaluation cases.")
    gates: dict[Identifier, ThresholdText] = Field(
        min_length=1, description="Metric -> required value, e.g. accuracy: '>= 0.92'."
    )
    max_drop: dict[Identifier, Annotated[float, Field(ge=0)]] = Field(
        default={}, description="Metric -> largest allowed drop against the previous version."
    )
    groups: list[str] = Field(
        default=[],
        description=(
            "Knowledge tasks: access groups the evaluation retrieves with, in the project's "
            "default tenant (everyone's documents are always visible)."
        ),
    )
    out_of_scope_label: str | None = Field(
        default=None,
        description=(
            "Expected label that marks out-of-scope cases (e.g. oos); enables the "
            "out-of-scope metrics: in_scope_accuracy, oos_recall, oos_precision, oos_f1."
        ),
    )

    @property
    def thresholds(self) -> dict[str, Threshold]:
        """The gates, parsed."""
        return {metric: parse_threshold(text) for metric, text in self.gates.items()}


class KpiSpec(SpecModel):
    """A business measure that tells whether the task's hypothesis holds."""

    name: Identifier = Field(description="KPI name, snake_case, e.g. auto_routed_share.")
    description: str = Field(min_length=1, description="What is measured and how.")
    target: ThresholdText = Field(description="Required value, e.g. '>= 0.85'.")
    unit: str | None = Field(default=None, description="Unit shown next to values, e.g. '%'.")

    @property
    def threshold(self) -> Threshold:
        """The target, parsed."""
        return parse_threshold(self.target)


class HypothesisSpec(SpecModel):
    """The business outcome the task was built for and how to tell it is reached."""

    outcome: str = Field(min_length=1, description="The outcome expected from the task.")
    kpis: list[KpiSpec] = Field(min_length=1, description="Measures of the outcome.")

    @model_validator(mode="after")
    def _unique_kpis(self) -> Self:
        seen: set[str] = set()
        problems: list[Problem] = []
        for index, kpi in enumerate(self.kpis):
            if kpi.name in seen:
                problems.append((("kpis", index, "name"), f"duplicate KPI name {kpi.name!r}"))
            seen.add(kpi.name)
        raise_problems("HypothesisSpec", problems)
        return self


def _classify_output(output: Mapping[str, FieldSpec]) -> list[Problem]:
    """A classifier answers with exactly a label from a fixed set and a confidence."""
    problems: list[Problem] = []
    for name in sorted(set(output) - {"label", "confidence"}):
        problems.append(((name,), "kind classify allows only 'label' and 'confidence' outputs"))
    for name, wanted in (("label", "enum"), ("confidence", "number")):
        field = output.get(name)
        if field is None:
            problems.append(((), f"kind classify needs a '{name}' output of type {wanted}"))
        elif field.type != wanted:
            problems.append(((name, "type"), f"kind classify needs '{name}' of type {wanted}"))
        elif not field.required:
            problems.append(((name, "required"), f"'{name}' is always produced; keep it required"))
    return problems


_ANSWER_FIELDS: Final[Mapping[str, tuple[str, bool]]] = MappingProxyType(
    {
        "answer": ("string", True),
        "answerable": ("boolean", True),
        "citations": ("citations", True),
        "confidence": ("number", False),
    }
)


def _answer_output(output: Mapping[str, FieldSpec]) -> list[Problem]:
    """A knowledge answer: the text, whether it answers, its citations (and a confidence)."""
    problems: list[Problem] = []
    allowed = ", ".join(f"'{name}'" for name in _ANSWER_FIELDS)
    for name in sorted(set(output) - set(_ANSWER_FIELDS)):
        problems.append(((name,), f"kind answer allows only {allowed} outputs"))
    for name, (wanted, needed) in _ANSWER_FIELDS.items():
        field = output.get(name)
        if field is None:
            if needed:
                problems.append(((), f"kind answer needs a '{name}' output of type {wanted}"))
        elif field.type != wanted:
            problems.append(((name, "type"), f"kind answer needs '{name}' of type {wanted}"))
    return problems


def _extract_output(output: Mapping[str, FieldSpec]) -> list[Problem]:
    """Extracted fields are text copied from the input, absent (null) when not mentioned;
    an optional ``confidence`` number carries the tagger's probability."""
    problems: list[Problem] = []
    for name, field in output.items():
        if name == "confidence":
            if field.type != "number":
                problems.append(((name, "type"), "kind extract needs 'confidence' of type number"))
        elif field.type != "string":
            problems.append(((name, "type"), f"kind extract fills '{name}' with text: use string"))
        elif field.required:
            problems.append(
                ((name, "required"), f"'{name}' is null when the text lacks it; required: false")
            )
    if set(output) <= {"confidence"}:
        problems.append(((), "kind extract needs at least one string output field"))
    return problems


KIND_OUTPUT_RULES: Final[Mapping[str, Callable[[Mapping[str, FieldSpec]], list[Problem]]]] = (
    MappingProxyType(
        {
            "classify": _classify_output,
            "answer": _answer_output,
            "extract": _extract_output,
            "decide": decide_output,
            "generate": generate_output,
        }
    )
)
"""Output contracts of the built-in kinds; a plugin kind without an entry has no extra rule."""


def _mapping_problems(
    mapping: Mapping[str, str], fields: Mapping[str, FieldSpec], what: str, *, cover: bool
) -> list[Problem]:
    """Mapped field names must be declared; with ``cover``, every required one is mapped."""
    problems: list[Problem] = [
        ((name,), f"'{name}' is not a declared {what} field ({', '.join(fields)})")
        for name in mapping
        if name not in fields
    ]
    if cover:
        problems += [
            ((), f"required {what} field '{name}' has no column")
            for name, spec in fields.items()
            if spec.required and name not in mapping
        ]
    return problems


class TaskSpec(SpecModel):
    """One task: its typed contract, model route, policy, evaluation gates and hypothesis."""

    name: Slug = Field(description="Task name; part of the endpoint URL. Unique per project.")
    version: int = Field(ge=1, description="Increase for every change that affects results.")
    description: str = Field(min_length=1, description="What the task does, for people.")
    owner: str = Field(min_length=1, description="Accountable team or person (e-mail, handle).")
    kind: str = Field(description="Task kind, e.g. 'classify'; decides how the task runs.")
    input: dict[FieldName, FieldSpec] = Field(
        min_length=1, description="Input fields callers send."
    )
    output: dict[FieldName, FieldSpec] = Field(
        min_length=1, description="Output fields the task returns."
    )
    model: ModelRoute = Field(description="Which model runs the task, with fallbacks.")
    training: TrainingSpec | None = Field(
        default=None, description="Training data, for kinds with a trainable model."
    )
    knowledge: KnowledgeSpec | None = Field(
        default=None, description="Collections to retrieve from, for kind answer."
    )
    policy: PolicySpec = Field(default=PolicySpec(), description="Access and human-review policy.")
    evaluation: EvaluationSpec | None = Field(
        default=None, description="Evaluation set and gates checked before promotion."
    )
    prompt: PromptSpec | None = Field(
        default=None, description="Prompt templates, for tasks served by a chat model."
    )
    generation: GenerationSpec = Field(
        default=GenerationSpec(), description="Reply limits for chat models."
    )
    hypothesis: HypothesisSpec | None = Field(
        default=None, description="Business outcome and the KPIs that track it."
    )
    pii: PiiSpec = Field(default=PiiSpec(), description="Personal data in inputs (docs/pii.md).")
    injection: InjectionPolicy = Field(default="flag", description="Injection screening.")
    retention_days: int | None = Field(
        default=None,
        ge=1,
        le=36_500,  # a hundred years; as for collections (services.retention)
        description="Days a run's input and output are kept, then purged (the run row and its "
        "audit event stay). Omit to keep forever.",
    )

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, kind: str, info: ValidationInfo) -> str:
        context = info.context if isinstance(info.context, Mapping) else {}
        kinds: Collection[str] = context.get("kinds") or DEFAULT_KINDS
        if kind not in kinds:
            raise ValueError(f"unknown task kind {kind!r} (known: {', '.join(sorted(kinds))})")
        return kind

    @field_validator("output")
    @classmethod
    def _kind_output(cls, output: dict[str, FieldSpec], info: ValidationInfo) -> Any:
        rule = KIND_OUTPUT_RULES.get(info.data.get("kind", ""))
        if rule is not None:
            raise_problems("TaskSpec", rule(output))
        return output

    @model_validator(mode="after")
    def _prompt_fields(self) -> Self:
        if self.prompt is None:
            return self
        problems: list[Problem] = []
        for key in ("system", "user"):
            for name in template_fields(getattr(self.prompt, key)):
                if name not in self.input:
                    problems.append(
                        (
                            ("prompt", key),
                            f"template field {{{name}}} is not a plain declared input field "
                            f"({', '.join(self.input)})",
                        )
                    )
        raise_problems("TaskSpec", problems)
        return self

    @model_validator(mode="after")
    def _prompt_for_generate(self) -> Self:
        if self.kind == "generate" and self.prompt is None:
            raise_problems("TaskSpec", [((), "kind generate needs a 'prompt' (system, user)")])
        return self

    @model_validator(mode="after")
    def _chat_model_rules(self) -> Self:
        raise_problems("TaskSpec", route_problems(self))
        return self

    @model_validator(mode="after")
    def _knowledge_for_answer(self) -> Self:
        if self.kind != "answer":
            return self
        problems: list[Problem] = []
        if self.knowledge is None:
            problems.append(((), "kind answer needs a 'knowledge' block naming its collections"))
        question = self.input.get("question")
        if question is None or question.type != "string":
            problems.append((("input",), "kind answer needs a 'question' input of type string"))
        raise_problems("TaskSpec", problems)
        return self

    @field_validator("training")
    @classmethod
    def _training_fields(cls, training: TrainingSpec | None, info: ValidationInfo) -> Any:
        inputs = info.data.get("input")
        if training is not None and inputs is not None:
            problems = _mapping_problems(training.input, inputs, "input", cover=True)
            raise_problems("TaskSpec", [(("input", *loc), msg) for loc, msg in problems])
        return training

    @field_validator("evaluation")
    @classmethod
    def _evaluation_fields(cls, evaluation: EvaluationSpec | None, info: ValidationInfo) -> Any:
        if evaluation is None:
            return evaluation
        problems: list[Problem] = []
        dataset = evaluation.dataset
        for key, what, cover, mapping in (
            ("input", "input", True, dataset.input),
            ("output", "output", False, dataset.expected),
        ):
            fields = info.data.get(key)
            if fields is not None:
                where = "input" if key == "input" else "expected"
                problems += [
                    (("dataset", where, *loc), msg)
                    for loc, msg in _mapping_problems(mapping, fields, what, cover=cover)
                ]
        raise_problems("TaskSpec", problems)
        return evaluation


class ProjectConfig(SpecModel):
    """``shipyard.yaml``: the project that holds a folder of task specs."""

    name: Slug = Field(description="Project name.")
    description: str = Field(default="", description="What the project is for.")
    tasks_dir: DirPath = Field(
        default="tasks", description="Folder of task spec YAML files, relative to this file."
    )
    default_tenant: Slug = Field(
        default="default", description="Tenant used when a request names none."
    )
