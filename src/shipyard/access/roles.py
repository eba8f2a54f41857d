"""Roles and the role x operation matrix, enforced in one place (``authorize``)."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from shipyard.errors import Forbidden


class Role(StrEnum):
    # Manages tenants (create, disable) and may act in every tenant: the operator of the
    # installation, not of one customer. Every other role is scoped to its own tenant.
    PLATFORM_ADMIN = "platform-admin"
    ADMIN = "admin"
    OPERATOR = "operator"
    REVIEWER = "reviewer"
    CALLER = "caller"


class Operation(StrEnum):
    TASK_READ = "task:read"
    TASK_RUN = "task:run"
    RUN_READ_OWN = "run:read-own"  # runs created with the same key
    RUN_READ_ALL = "run:read-all"  # every run of the tenant
    KNOWLEDGE_READ = "knowledge:read"  # list collections/documents, search (groups apply)
    KNOWLEDGE_WRITE = "knowledge:write"  # create collections, ingest, delete documents
    JOB_READ = "job:read"
    AUDIT_READ = "audit:read"  # the tenant's audit events
    KEY_MANAGE = "key:manage"  # create, list, rotate, revoke the tenant's API keys
    BINDING_MANAGE = "binding:manage"  # grant roles and groups to OIDC users and groups
    PII_REVEAL = "pii:reveal"  # see redacted PII restored (where the task's policy allows)
    TENANT_MANAGE = "tenant:manage"  # create, list, disable tenants (platform-wide)


# Operations that change who may do what: held by admins, never by operators.
_ADMINISTRATION = frozenset({Operation.KEY_MANAGE, Operation.BINDING_MANAGE, Operation.PII_REVEAL})
_TENANT_WORK = frozenset(Operation) - _ADMINISTRATION - {Operation.TENANT_MANAGE}

PERMISSIONS: dict[Role, frozenset[Operation]] = {
    Role.PLATFORM_ADMIN: frozenset(Operation),
    Role.ADMIN: frozenset(Operation) - {Operation.TENANT_MANAGE},
    Role.OPERATOR: _TENANT_WORK,
    Role.REVIEWER: frozenset(
        {
            Operation.TASK_READ,
            Operation.RUN_READ_OWN,
            Operation.RUN_READ_ALL,
            Operation.KNOWLEDGE_READ,
            Operation.JOB_READ,
        }
    ),
    Role.CALLER: frozenset(
        {
            Operation.TASK_READ,
            Operation.TASK_RUN,
            Operation.RUN_READ_OWN,
            Operation.KNOWLEDGE_READ,
        }
    ),
}


def operations(roles: Iterable[Role]) -> frozenset[Operation]:
    """Everything a set of roles permits: the rights a principal holds."""
    held: set[Operation] = set()
    for role in roles:
        held |= PERMISSIONS[role]
    return frozenset(held)


def allowed(roles: Iterable[Role], operation: Operation) -> bool:
    return any(operation in PERMISSIONS[role] for role in roles)


def authorize(roles: Iterable[Role], operation: Operation) -> None:
    if not allowed(roles, operation):
        raise Forbidden(f"none of your roles may perform {operation.value}")


def parse_roles(values: Iterable[str]) -> frozenset[Role]:
    roles = set()
    for value in values:
        try:
            roles.add(Role(value.strip()))
        except ValueError:
            valid = ", ".join(r.value for r in Role)
            raise ValueError(f"unknown role {value!r}; valid roles: {valid}") from None
    if not roles:
        raise ValueError("at least one role is required")
    return frozenset(roles)
