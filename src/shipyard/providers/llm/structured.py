"""Structured output: the JSON schema sent to the model and the check of its reply.

The schema sent is the task's output model in the subset OpenAI's strict mode accepts (every
property required, optional ones nullable, no extra properties, no defaults or string length
keywords). The pydantic output model stays the authority: every reply is validated against it,
whatever the server claims to have enforced.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

from shipyard.errors import FieldProblem

# Keywords strict mode refuses; their rules are still checked by the pydantic model.
_UNSUPPORTED = frozenset({"default", "minLength", "maxLength"})
# Keys whose value maps *names* to schemas (a property may well be called "default").
_NAMED_SCHEMAS = frozenset({"properties", "$defs", "definitions", "patternProperties"})


def strict_json_schema(model: type[BaseModel]) -> dict[str, Any]:
    schema: dict[str, Any] = _strict(model.model_json_schema())
    return schema


def _strict(node: Any) -> Any:
    if isinstance(node, list):
        return [_strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _UNSUPPORTED:
            continue
        if key in _NAMED_SCHEMAS and isinstance(value, dict):
            out[key] = {name: _strict(schema) for name, schema in value.items()}
        else:
            out[key] = _strict(value)
    if out.get("type") == "object" and isinstance(out.get("properties"), dict):
        # Optional fields are already "X or null" in the schema; strict mode wants them listed.
        out["required"] = list(out["properties"])
        out["additionalProperties"] = False
    return out


class OutputProblems(Exception):
    """The reply is not a valid output; ``problems`` say where and why."""

    def __init__(self, problems: list[FieldProblem]) -> None:
        super().__init__("; ".join(str(problem) for problem in problems))
        self.problems = problems


def parse_output(content: str, model: type[BaseModel], *, truncated: bool = False) -> BaseModel:
    """The reply parsed and validated, or :class:`OutputProblems` (never a partial object)."""
    try:
        return model.model_validate_json(content)
    except ValidationError as error:
        problems = [
            FieldProblem(".".join(str(part) for part in issue["loc"]) or "reply", issue["msg"])
            for issue in error.errors(include_url=False, include_input=False)
        ]
        if truncated:
            problems.append(FieldProblem("reply", "the reply was cut off at max_tokens"))
        raise OutputProblems(problems) from None


def repair_instruction(problems: OutputProblems) -> str:
    """The user message asking the model to correct its previous reply."""
    listed = "\n".join(f"- {problem}" for problem in problems.problems)
    return (
        "Your previous reply is not valid for the required JSON schema:\n"
        f"{listed}\n"
        "Reply again with only a JSON object that matches the schema."
    )
