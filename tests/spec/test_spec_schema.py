"""The published JSON Schema accepts the example spec, rejects typos and is documented."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml
from pydantic import BaseModel
from spec_helpers import EXAMPLE_PROJECT, REPO_ROOT

from shipyard.spec import project_json_schema, spec_json_schema
from shipyard.spec.constraints import SpecModel

TYPES: dict[str, Any] = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
    "null": type(None),
    "number": (int, float),
    "integer": int,
}


def check(schema: dict[str, Any], value: Any, root: dict[str, Any], at: str = "$") -> list[str]:
    """A tiny JSON Schema checker for the keywords Pydantic emits (no new dependency)."""
    if "$ref" in schema:
        name = schema["$ref"].removeprefix("#/$defs/")
        return check(root["$defs"][name], value, root, at)
    if "anyOf" in schema:
        branches = [check(s, value, root, at) for s in schema["anyOf"]]
        if any(not b for b in branches):
            return []
        return [f"{at}: no anyOf branch matches", *(p for b in branches for p in b)]
    problems: list[str] = []
    kind = schema.get("type")
    if kind is not None:
        is_bool = isinstance(value, bool)
        if not isinstance(value, TYPES[kind]) or (is_bool and kind in ("number", "integer")):
            return [f"{at}: expected {kind}"]
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{at}: not one of {schema['enum']}")
    if "pattern" in schema and not re.search(schema["pattern"], value):
        problems.append(f"{at}: does not match {schema['pattern']}")
    for key, test in [
        ("minimum", lambda v, b: v >= b),
        ("maximum", lambda v, b: v <= b),
        ("minLength", lambda v, b: len(v) >= b),
        ("minItems", lambda v, b: len(v) >= b),
        ("minProperties", lambda v, b: len(v) >= b),
    ]:
        if key in schema and not test(value, schema[key]):
            problems.append(f"{at}: violates {key}")
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            problems += check(schema["items"], item, root, f"{at}[{index}]")
    if isinstance(value, dict):
        problems += _check_object(schema, value, root, at)
    return problems


def _check_object(
    schema: dict[str, Any], value: dict[str, Any], root: dict[str, Any], at: str
) -> list[str]:
    problems = [f"{at}.{k}: required" for k in schema.get("required", []) if k not in value]
    properties = schema.get("properties", {})
    for key, item in value.items():
        if key in properties:
            problems += check(properties[key], item, root, f"{at}.{key}")
            continue
        patterns = schema.get("patternProperties", {})
        matched = [s for p, s in patterns.items() if re.search(p, key)]
        for sub in matched:
            problems += check(sub, item, root, f"{at}.{key}")
        extra = schema.get("additionalProperties", True)
        if patterns and not matched:
            problems.append(f"{at}.{key}: key does not match {list(patterns)}")
        elif not matched and extra is False:
            problems.append(f"{at}.{key}: not allowed")
        elif not matched and isinstance(extra, dict):
            problems += check(extra, item, root, f"{at}.{key}")
    return problems


def _example() -> dict[str, Any]:
    text = (EXAMPLE_PROJECT / "tasks" / "ticket-triage.yaml").read_text()
    data: dict[str, Any] = yaml.safe_load(text)
    return data


def test_schema_is_published_json() -> None:
    schema = spec_json_schema()

    assert json.loads(json.dumps(schema)) == schema
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"].endswith("task-spec.schema.json")
    assert schema["title"] == "Shipyard task spec"
    assert schema["additionalProperties"] is False


def test_schema_accepts_the_example_spec() -> None:
    schema = spec_json_schema()

    assert check(schema, _example(), schema) == []


def test_schema_accepts_the_example_project() -> None:
    schema = project_json_schema()
    data = yaml.safe_load((EXAMPLE_PROJECT / "shipyard.yaml").read_text())

    assert check(schema, data, schema) == []


@pytest.mark.parametrize(
    ("path", "value", "fragment"),
    [
        (("input", "text", "max_lenght"), 5, "not allowed"),
        (("evaluation", "gates", "accuracy"), "at least 0.9", "does not match"),
        (("version",), 0, "violates minimum"),
        (("training", "path"), "../train.csv", "does not match"),
        (("name",), "Ticket Triage", "does not match"),
    ],
)
def test_schema_rejects_mistakes(path: tuple[str, ...], value: Any, fragment: str) -> None:
    schema, data = spec_json_schema(), _example()
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value

    problems = check(schema, data, schema)

    assert any(fragment in p for p in problems), problems


def _models() -> list[type[BaseModel]]:
    found: list[type[BaseModel]] = []
    pending: list[type[BaseModel]] = [SpecModel]
    while pending:
        for sub in pending.pop().__subclasses__():
            found.append(sub)
            pending.append(sub)
    return found


def test_every_field_is_described_and_documented() -> None:
    docs = (REPO_ROOT / "docs" / "spec.md").read_text()
    for model in _models():
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no description"
            assert f"`{name}`" in docs, f"docs/spec.md does not mention {model.__name__}.{name}"


def test_docs_show_the_example_spec_verbatim() -> None:
    docs = (REPO_ROOT / "docs" / "spec.md").read_text()
    example = (EXAMPLE_PROJECT / "tasks" / "ticket-triage.yaml").read_text()

    assert f"```yaml\n{example}```" in docs
