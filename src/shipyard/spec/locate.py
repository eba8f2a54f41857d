"""Map validation errors back to YAML lines.

Authors fix specs in an editor, so every problem must name a line. PyYAML's composed node
tree keeps the position of every key; a Pydantic error location (``("output", "label",
"values")``) is followed through that tree as far as it exists, and the deepest key found gives
the line. A missing key therefore points at its parent, which is where it must be added.
"""

from __future__ import annotations

import difflib
import types
from dataclasses import dataclass
from typing import Annotated, Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from shipyard.errors import FieldProblem

DOCUMENT = "(document)"
"""Field name used for problems that concern the whole file."""


@dataclass(frozen=True)
class ParsedYaml:
    """A YAML document as data plus the node tree that remembers where each value was."""

    data: Any
    root: yaml.Node | None


def parse_yaml(text: str) -> ParsedYaml:
    """Parse one YAML document with the safe loader; ``yaml.YAMLError`` on bad syntax."""
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        data = loader.construct_document(root) if root is not None else None
    finally:
        loader.dispose()
    return ParsedYaml(data=data, root=root)


def yaml_error_line(error: yaml.YAMLError) -> int | None:
    """1-based line of a YAML syntax error, when PyYAML knows it."""
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    return mark.line + 1 if mark is not None else None


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def _child(node: yaml.Node, part: str | int) -> tuple[yaml.Node, yaml.Node] | None:
    """(key node or item node, value node) for one step of a location, if it exists."""
    if isinstance(node, yaml.MappingNode):
        # The last duplicate wins when PyYAML constructs the data, so match the last one.
        for key, value in reversed(node.value):
            if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                return key, value
    elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
        item = node.value[part]
        return item, item
    return None


def line_of(root: yaml.Node | None, loc: tuple[str | int, ...]) -> int | None:
    """Line of the deepest node of ``loc`` that exists in the document."""
    if root is None:
        return None
    node, line = root, _line(root)
    for part in loc:
        found = _child(node, part)
        if found is None:
            break
        key, node = found
        line = _line(key)
    return line


def format_loc(loc: tuple[str | int, ...]) -> str:
    """``("kpis", 0, "name")`` -> ``"kpis[0].name"``; dict-key markers are dropped."""
    text = ""
    for part in loc:
        if part == "[key]":
            continue
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or DOCUMENT


def duplicate_keys(root: yaml.Node | None) -> list[tuple[tuple[str | int, ...], int, str]]:
    """Keys given twice in one mapping: PyYAML keeps the last silently, hiding a mistake."""
    found: list[tuple[tuple[str | int, ...], int, str]] = []

    def walk(node: yaml.Node, path: tuple[str | int, ...]) -> None:
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key, value in node.value:
                name = str(key.value) if isinstance(key, yaml.ScalarNode) else "?"
                if name in seen:
                    found.append(((*path, name), _line(key), name))
                seen.add(name)
                walk(value, (*path, name))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                walk(item, (*path, index))

    if root is not None:
        walk(root, ())
    return found


def _unwrap(tp: Any) -> Any:
    """Strip ``Annotated`` and ``X | None`` so the structural type remains."""
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin in (Union, types.UnionType):
            args = [a for a in get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp
            tp = args[0]
        else:
            return tp


def allowed_keys(model: type[BaseModel], loc: tuple[str | int, ...]) -> list[str]:
    """Field names of the model found at ``loc`` (for "did you mean" hints)."""
    tp: Any = model
    for part in loc:
        tp = _unwrap(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = tp.model_fields.get(str(part))
            if field is None:
                return []
            tp = field.annotation
        elif get_origin(tp) is dict:
            tp = get_args(tp)[1]
        elif get_origin(tp) is list:
            tp = get_args(tp)[0]
        else:
            return []
    tp = _unwrap(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return list(tp.model_fields)
    return []


def _message(error: ErrorDetails, model: type[BaseModel]) -> str:
    kind, loc = error["type"], tuple(error["loc"])
    if kind == "extra_forbidden":
        name = str(loc[-1]) if loc else "?"
        allowed = allowed_keys(model, loc[:-1])
        close = difflib.get_close_matches(name, allowed, n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"allowed: {', '.join(allowed)}"
        return f"unknown key '{name}' ({hint})"
    if kind == "missing":
        return "required key is missing"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return "expected a mapping of keys to values"
    if kind == "value_error":
        ctx = error.get("ctx") or {}
        return str(ctx.get("error", error["msg"]))
    return error["msg"]


def problems_from(
    error: ValidationError, model: type[BaseModel], root: yaml.Node | None, file: str
) -> list[FieldProblem]:
    """One :class:`FieldProblem` per Pydantic error, located in the YAML file."""
    return [
        FieldProblem(
            field=format_loc(tuple(e["loc"])),
            message=_message(e, model),
            file=file,
            line=line_of(root, tuple(e["loc"])),
        )
        for e in error.errors()
    ]
