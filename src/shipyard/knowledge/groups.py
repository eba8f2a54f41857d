"""Access groups: who may retrieve a document. Checked inside every index query."""

from __future__ import annotations

from collections.abc import Iterable

from shipyard import names
from shipyard.errors import FieldProblem, InvalidInput
from shipyard.knowledge.types import EVERYONE

GROUP_RE = names.GROUP_RE
MAX_GROUPS = 50


def normalise_groups(groups: Iterable[str], where: str = "groups") -> frozenset[str]:
    """A document's groups, validated; none given means readable by everyone."""
    cleaned = frozenset(group.strip() for group in groups if group.strip())
    bad = sorted(group for group in cleaned if not GROUP_RE.match(group))
    if bad:
        raise InvalidInput(
            "invalid access group",
            [FieldProblem(where, f"{bad[0]!r}: use 1-64 letters, digits, '-', '_' or '.'")],
        )
    if len(cleaned) > MAX_GROUPS:
        raise InvalidInput("too many groups", [FieldProblem(where, f"at most {MAX_GROUPS}")])
    return cleaned or frozenset({EVERYONE})


def caller_groups(groups: Iterable[str]) -> frozenset[str]:
    """The groups a principal reads with: its own plus the implicit ``everyone``."""
    return frozenset(groups) | {EVERYONE}
