"""docs/access.md's role x operation table is the one the code enforces."""

from __future__ import annotations

from pathlib import Path

from shipyard.access.roles import PERMISSIONS, Operation, Role

DOC = Path(__file__).parent.parent / "docs" / "access.md"


def test_documented_matrix_matches_permissions() -> None:
    rows = [line for line in DOC.read_text().splitlines() if line.startswith("| `")]
    header = next(line for line in DOC.read_text().splitlines() if line.startswith("| operation |"))
    roles = [cell.strip() for cell in header.strip("|").split("|")[1:]]
    assert roles == [role.value for role in Role]
    documented = {}
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        if len(cells) != len(roles) + 1 or not cells[0].startswith("`"):
            continue
        documented[cells[0].strip("`")] = {
            role for role, mark in zip(roles, cells[1:], strict=True) if mark == "✓"
        }
    expected = {
        op.value: {role.value for role in Role if op in PERMISSIONS[role]} for op in Operation
    }
    assert documented == expected
