"""Minimal, format-preserving edits of a task spec file (comments and layout stay as written)."""

from __future__ import annotations

from pathlib import Path

import yaml

from shipyard.errors import SpecInvalid


def _mapping_value(node: yaml.Node, key: str) -> tuple[yaml.Node, yaml.Node] | None:
    if not isinstance(node, yaml.MappingNode):
        return None
    for key_node, value_node in node.value:
        if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
            return key_node, value_node
    return None


def set_policy_value(path: Path, key: str, value: str) -> None:
    """Set ``policy.<key>`` to the YAML scalar ``value``, replacing or adding it in place."""
    text = path.read_text(encoding="utf-8")
    root = yaml.compose(text)
    if root is None:
        raise SpecInvalid(f"{path}: empty spec")
    policy = _mapping_value(root, "policy")
    if policy is None:
        text = text.rstrip("\n") + f"\npolicy:\n  {key}: {value}\n"
    else:
        policy_key, policy_node = policy
        existing = _mapping_value(policy_node, key)
        if existing is not None:
            start, end = existing[1].start_mark.index, existing[1].end_mark.index
            # An empty value (`key:`) has no characters of its own; keep the space YAML needs.
            text = text[:start] + (value if end > start else " " + value) + text[end:]
        elif isinstance(policy_node, yaml.MappingNode) and not policy_node.flow_style:
            first_key = policy_node.value[0][0] if policy_node.value else None
            indent = first_key.start_mark.column if first_key is not None else 2
            lines = text.splitlines(keepends=True)
            line = policy_key.start_mark.line
            lines.insert(line + 1, " " * indent + f"{key}: {value}\n")
            text = "".join(lines)
        else:
            raise SpecInvalid(
                f"{path}:{policy_key.start_mark.line + 1}: policy is written inline; "
                f"add `{key}: {value}` to it by hand"
            )
    try:
        yaml.safe_load(text)
    except yaml.YAMLError as exc:  # never leave a broken spec behind
        raise SpecInvalid(
            f"{path}: could not set policy.{key} safely ({exc}); edit it by hand"
        ) from None
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(text, encoding="utf-8")
    temp.replace(path)
