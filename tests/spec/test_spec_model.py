"""Rules of the spec models that do not need files: field options, policy, KPIs, gates."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from shipyard.spec import (
    FieldSpec,
    HypothesisSpec,
    ModelRoute,
    PolicySpec,
    ProjectConfig,
    Threshold,
    parse_threshold,
)


def errors(model: Any, data: dict[str, Any]) -> dict[tuple[str | int, ...], str]:
    with pytest.raises(ValidationError) as info:
        model.model_validate(data)
    return {tuple(e["loc"]): e["msg"] for e in info.value.errors()}


@pytest.mark.parametrize(
    "data",
    [
        {"type": "string", "min_length": 1, "max_length": 10},
        {"type": "integer", "minimum": 0, "maximum": 5},
        {"type": "number", "minimum": 0, "maximum": 0.5},
        {"type": "boolean", "required": False},
        {"type": "enum", "values": ["a", "b"]},
        {"type": "enum", "values_from": "data/labels.json"},
        {"type": "list", "items": "string", "max_items": 3},
    ],
)
def test_valid_field_specs(data: dict[str, Any]) -> None:
    FieldSpec.model_validate(data)


@pytest.mark.parametrize(
    ("data", "loc", "fragment"),
    [
        ({"type": "string", "minimum": 1}, ("minimum",), "does not apply to type 'string'"),
        ({"type": "boolean", "values": ["a"]}, ("values",), "does not apply"),
        ({"type": "enum"}, (), "exactly one of 'values' or 'values_from'"),
        (
            {"type": "enum", "values": ["a"], "values_from": "x.json"},
            (),
            "exactly one of",
        ),
        ({"type": "enum", "values": ["a", "a"]}, ("values",), "unique"),
        ({"type": "enum", "values_from": "labels.txt"}, ("values_from",), "end with .json"),
        ({"type": "list"}, (), "needs 'items'"),
        ({"type": "string", "min_length": 5, "max_length": 2}, ("min_length",), "greater"),
        ({"type": "integer", "minimum": 0.5}, ("minimum",), "whole number"),
        ({"type": "text"}, ("type",), "Input should be"),
    ],
)
def test_invalid_field_specs(data: dict[str, Any], loc: tuple[str, ...], fragment: str) -> None:
    found = errors(FieldSpec, data)

    assert loc in found, found
    assert fragment in found[loc]


def test_spec_models_are_strict_and_closed() -> None:
    assert ("required",) in errors(FieldSpec, {"type": "string", "required": "yes"})
    assert ("colour",) in errors(FieldSpec, {"type": "string", "colour": "red"})


def test_policy_rules() -> None:
    assert PolicySpec().roles == ["caller", "operator", "admin"]
    assert ("roles",) in errors(PolicySpec, {"roles": []})
    assert ("roles",) in errors(PolicySpec, {"roles": ["admin", "admin"]})
    assert ("roles", 0) in errors(PolicySpec, {"roles": ["root"]})
    assert ("review_below",) in errors(PolicySpec, {"review_below": 1.2})
    assert ("max_input_chars",) in errors(PolicySpec, {"max_input_chars": 0})


def test_kpi_names_are_unique() -> None:
    kpi = {"name": "share", "description": "d", "target": ">= 0.5"}
    found = errors(HypothesisSpec, {"outcome": "o", "kpis": [kpi, kpi]})

    assert "duplicate KPI name" in found[("kpis", 1, "name")]


def test_kpi_target_is_parsed() -> None:
    spec = HypothesisSpec.model_validate(
        {
            "outcome": "o",
            "kpis": [{"name": "misroute_rate", "description": "d", "target": "<= 3e-2"}],
        }
    )

    assert spec.kpis[0].threshold == Threshold("<=", 0.03)


def test_fallbacks_must_differ_from_primary() -> None:
    route = {"provider": "local", "model": "m", "fallbacks": [{"provider": "local", "model": "m"}]}

    assert ("fallbacks", 0) in errors(ModelRoute, route)


def test_project_config_defaults() -> None:
    config = ProjectConfig.model_validate({"name": "support-desk"})

    assert (config.tasks_dir, config.default_tenant) == ("tasks", "default")
    assert ("tasks_dir",) in errors(ProjectConfig, {"name": "ab", "tasks_dir": "/abs"})


# --- comparator grammar -------------------------------------------------------------------

OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
}
finite = st.floats(allow_nan=False, allow_infinity=False)
spaces = st.text(alphabet=" \t", max_size=3)


@given(op=st.sampled_from(sorted(OPS)), value=finite, pre=spaces, mid=spaces, post=spaces)
def test_threshold_parses_what_it_should(
    op: str, value: float, pre: str, mid: str, post: str
) -> None:
    threshold = parse_threshold(f"{pre}{op}{mid}{value!r}{post}")

    assert threshold == Threshold(op, value)  # type: ignore[arg-type]
    assert parse_threshold(str(threshold)) == threshold


@given(op=st.sampled_from(sorted(OPS)), value=finite, observed=finite)
def test_threshold_compares_like_the_operator(op: str, value: float, observed: float) -> None:
    threshold = parse_threshold(f"{op} {value!r}")

    assert threshold.passes(observed) is OPS[op](observed, value)
    assert not threshold.passes(math.nan)


@given(st.text(max_size=20))
def test_threshold_rejects_garbage_with_value_error_only(text: str) -> None:
    try:
        threshold = parse_threshold(text)
    except ValueError as exc:
        message = str(exc)
    else:
        message = "comparator"
        assert threshold.op in OPS
        assert math.isfinite(threshold.value)
    assert "comparator" in message


@pytest.mark.parametrize(
    "text", ["0.9", ">= ", "=> 0.9", "== 0.9", ">= 0.9 0.1", ">= nan", ">= inf", ">= 1e999"]
)
def test_threshold_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="comparator"):
        parse_threshold(text)


ANSWER_SPEC = {
    "name": "ask",
    "version": 1,
    "description": "Answer from the handbook.",
    "owner": "team@example.com",
    "kind": "answer",
    "input": {"question": {"type": "string"}},
    "output": {
        "answer": {"type": "string"},
        "answerable": {"type": "boolean"},
        "citations": {"type": "citations", "max_items": 5},
    },
    "model": {"provider": "local", "model": "extractive-minilm-hybrid"},
    "knowledge": {"collections": ["handbook"]},
}


def test_answer_kind_contract() -> None:
    from shipyard.spec import TaskSpec

    spec = TaskSpec.model_validate(ANSWER_SPEC)
    assert spec.knowledge is not None
    assert spec.knowledge.collections == ["handbook"]
    assert spec.knowledge.top_k == 5


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"knowledge": None}, "needs a 'knowledge' block"),
        ({"input": {"text": {"type": "string"}}}, "needs a 'question' input"),
        (
            {"output": {"answer": {"type": "string"}, "answerable": {"type": "boolean"}}},
            "needs a 'citations' output",
        ),
        (
            {
                "output": {
                    "answer": {"type": "string"},
                    "answerable": {"type": "string"},
                    "citations": {"type": "citations"},
                }
            },
            "'answerable' of type boolean",
        ),
        (
            {
                "output": {
                    "answer": {"type": "string"},
                    "answerable": {"type": "boolean"},
                    "citations": {"type": "citations"},
                    "label": {"type": "string"},
                }
            },
            "allows only",
        ),
        ({"knowledge": {"collections": ["hb", "hb"]}}, "unique"),
        ({"knowledge": {"collections": []}}, "at least 1"),
    ],
)
def test_answer_kind_rules(change: dict[str, object], message: str) -> None:
    from shipyard.spec import TaskSpec

    data = {**ANSWER_SPEC, **change}
    if data.get("knowledge") is None:
        data.pop("knowledge")
    with pytest.raises(ValidationError) as info:
        TaskSpec.model_validate(data)
    assert message in str(info.value)


@pytest.mark.parametrize("days", [0, 36_501, 800_000])
def test_retention_days_is_bounded(days: int) -> None:
    """An unbounded value would overflow the purge's date arithmetic."""
    from shipyard.spec import TaskSpec

    with pytest.raises(ValidationError) as info:
        TaskSpec.model_validate({**ANSWER_SPEC, "retention_days": days})
    assert "retention_days" in str(info.value)
    assert TaskSpec.model_validate({**ANSWER_SPEC, "retention_days": 36_500}).retention_days
