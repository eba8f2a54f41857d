"""Dependencies point inward (DESIGN.md): entry points -> services -> domain -> errors."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "shipyard"
ENTRY_POINTS = {"api", "cli", "console", "jobs"}
DOMAIN = {
    "spec",
    "kinds",
    "providers",
    "knowledge",
    "evaluation",
    "governance",
    "access",
    "rollout",
    "storage",
    "observability",
}
MAX_MODULE_LINES = 600


def layer_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "shipyard"


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return {name for name in found if name == "shipyard" or name.startswith("shipyard.")}


def forbidden_for(layer: str) -> set[str]:
    if layer in ENTRY_POINTS:
        # The API and the CLI start a job runner (jobs/); the CLI also serves the API.
        allowed = {layer, "jobs"} | ({"api"} if layer == "cli" else set())
        return ENTRY_POINTS - allowed
    if layer == "services":
        return ENTRY_POINTS | {"bootstrap"}
    if layer in DOMAIN:
        return ENTRY_POINTS | {"services", "bootstrap"}
    if layer in {"errors", "settings"}:
        return ENTRY_POINTS | DOMAIN | {"services", "bootstrap"} - {layer}
    if layer == "bootstrap":
        return ENTRY_POINTS
    return set()


MODULES = sorted(SRC.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_imports_point_inward(path: Path) -> None:
    module = "shipyard." + ".".join(path.relative_to(SRC).with_suffix("").parts)
    layer = layer_of(module)
    bad = sorted(name for name in imports(path) if layer_of(name) in forbidden_for(layer))
    assert not bad, f"{module} ({layer}) must not import {bad}"


def test_errors_module_depends_on_nothing_of_ours() -> None:
    assert imports(SRC / "errors.py") == set()


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_modules_stay_small(path: Path) -> None:
    assert len(path.read_text().splitlines()) <= MAX_MODULE_LINES
