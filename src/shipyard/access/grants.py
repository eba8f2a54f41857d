"""No privilege escalation: a principal may hand out (to a key or a role binding) only rights
it holds itself. Rights are the operations its roles permit and its knowledge access groups."""

from __future__ import annotations

from shipyard.access.principal import Principal
from shipyard.access.roles import Role, operations
from shipyard.errors import Forbidden
from shipyard.knowledge.types import EVERYONE


def grant_problem(
    principal: Principal, roles: frozenset[Role], groups: frozenset[str]
) -> str | None:
    """Why ``principal`` may not grant ``roles`` and ``groups``, or None when it may."""
    held = operations(principal.roles)
    for role in sorted(roles):
        extra = operations([role]) - held
        if extra:
            names = ", ".join(sorted(op.value for op in extra))
            return f"role {role.value!r} carries operations you do not hold: {names}"
    # "everyone" is implied for every principal, so anyone may name it.
    missing = sorted(groups - principal.groups - {EVERYONE})
    if missing:
        return f"you cannot grant access group {missing[0]!r}: you are not a member of it"
    return None


def ensure_can_grant(principal: Principal, roles: frozenset[Role], groups: frozenset[str]) -> None:
    problem = grant_problem(principal, roles, groups)
    if problem is not None:
        raise Forbidden(problem)
