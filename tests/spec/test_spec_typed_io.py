"""Run-time request/response models built from a spec's fields."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError
from spec_helpers import EXAMPLE_PROJECT

from shipyard.errors import SpecInvalid
from shipyard.spec import FieldSpec, TaskSpec, input_model, load_project, output_model


@pytest.fixture(scope="module")
def triage() -> TaskSpec:
    return load_project(EXAMPLE_PROJECT).task("ticket-triage")


def test_names_and_schema(triage: TaskSpec) -> None:
    request, response = input_model(triage), output_model(triage)

    assert request.__name__ == "TicketTriageInput"
    assert response.__name__ == "TicketTriageOutput"
    text = request.model_json_schema()["properties"]["text"]
    assert (text["minLength"], text["maxLength"]) == (1, 1000)
    label = response.model_json_schema()["properties"]["label"]
    assert label["enum"] == triage.output["label"].values
    assert len(label["enum"]) == 77


@pytest.mark.parametrize(
    "body",
    [{}, {"text": ""}, {"text": "x" * 1001}, {"text": 5}, {"text": "hi", "extra": 1}],
)
def test_input_model_rejects_bad_requests(triage: TaskSpec, body: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        input_model(triage).model_validate(body)


def test_output_model_checks_label_and_confidence(triage: TaskSpec) -> None:
    response = output_model(triage)

    assert response.model_validate({"label": "card_arrival", "confidence": 0.7})
    with pytest.raises(ValidationError):
        response.model_validate({"label": "not_an_intent", "confidence": 0.7})
    with pytest.raises(ValidationError):
        response.model_validate({"label": "card_arrival", "confidence": 1.5})


def test_models_are_cached(triage: TaskSpec) -> None:
    assert input_model(triage) is input_model(triage)
    changed = triage.model_copy(update={"input": {"text": FieldSpec(type="string", max_length=10)}})
    assert input_model(changed) is not input_model(triage)


def _spec(fields: dict[str, Any]) -> TaskSpec:
    return TaskSpec.model_validate(
        {
            "name": "lead-score",
            "version": 2,
            "description": "d",
            "owner": "o",
            "kind": "classify",
            "input": fields,
            "output": {
                "label": {"type": "enum", "values": ["hot", "cold"]},
                "confidence": {"type": "number"},
            },
            "model": {"provider": "local", "model": "m"},
        }
    )


def test_all_field_types() -> None:
    spec = _spec(
        {
            "company": {"type": "string"},
            "employees": {"type": "integer", "minimum": 1, "maximum": 100000},
            "revenue": {"type": "number", "minimum": 0, "required": False},
            "existing_customer": {"type": "boolean"},
            "region": {"type": "enum", "values": ["emea", "apac"]},
            "tags": {"type": "list", "items": "string", "max_items": 2},
        }
    )
    model = input_model(spec)
    good = {
        "company": "ACME",
        "employees": 50,
        "existing_customer": False,
        "region": "emea",
        "tags": ["a"],
    }

    assert model.model_validate(good).model_dump()["revenue"] is None
    for key, bad in [
        ("employees", 0),
        ("employees", "50"),
        ("revenue", float("inf")),
        ("existing_customer", "no"),
        ("region", "latam"),
        ("tags", ["a", "b", "c"]),
        ("tags", [1]),
    ]:
        with pytest.raises(ValidationError):
            model.model_validate({**good, key: bad})
    schema = model.model_json_schema()
    assert schema["properties"]["region"]["enum"] == ["emea", "apac"]
    assert "revenue" not in schema["required"]


def test_unresolved_enum_is_refused() -> None:
    spec = _spec({"region": {"type": "enum", "values_from": "regions.json"}})

    with pytest.raises(SpecInvalid, match="not resolved"):
        input_model(spec)
