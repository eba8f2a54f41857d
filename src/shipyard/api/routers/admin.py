"""Administration: tenants (platform admins), the caller's tenant's API keys, its audit trail.

Authorization, escalation checks and auditing live in ``services.admin``; routes only shape
requests and responses. A key's token appears once, in the response that creates it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from shipyard import names
from shipyard.access.roles import Role
from shipyard.api.deps import ContainerDep, PrincipalDep
from shipyard.api.routers.tasks import PROBLEM_RESPONSES
from shipyard.api.schemas import JSON_INTEGER
from shipyard.storage.tables import ApiKey, AuditEvent, RoleBinding, Tenant

router = APIRouter(tags=["admin"])
Days = Annotated[int, Field(ge=1, le=3650), JSON_INTEGER]

_SLUG = names.SLUG
_GROUP = names.GROUP
_ADMIN_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: PROBLEM_RESPONSES[code] for code in (401, 403, 404, 413, 422, 429)
}
_CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {
        "description": "Conflicts with the current state",
        "content": {"application/problem+json": {}},
    }
}


# Path ids are checked by shape first: a value that can never be an id (a NUL byte, say) is
# refused before it reaches a database driver that would choke on it.
SlugPath = Annotated[str, Path(pattern=_SLUG)]
KeyIdPath = Annotated[str, Path(pattern=r"^[a-z0-9]{12}$")]
BindingIdPath = Annotated[str, Path(pattern=r"^[0-9a-f-]{36}$")]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TenantCreate(_Body):
    slug: str = Field(pattern=_SLUG, description="URL-safe id, e.g. acme")
    name: str | None = Field(default=None, min_length=1, max_length=200)
    admin_key_name: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="Also create the tenant's first admin key with this name",
    )


class TenantUpdate(_Body):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    disabled: StrictBool | None = Field(
        default=None, description="A disabled tenant's keys and sign-ins are refused"
    )


class TenantOut(BaseModel):
    id: str
    slug: str
    name: str
    created_at: datetime
    disabled_at: datetime | None = None


class KeyCreate(_Body):
    name: str = Field(min_length=1, max_length=200, description="What the key is for")
    roles: list[Role] = Field(min_length=1, max_length=len(Role))
    groups: list[Annotated[str, Field(pattern=_GROUP)]] = Field(default=[], max_length=100)
    expires_in_days: Days | None = Field(
        default=None, description="Lifetime; omit for a key that does not expire"
    )


class KeyRotate(_Body):
    overlap_seconds: Annotated[int, Field(ge=0, le=30 * 86_400), JSON_INTEGER] = Field(
        default=86_400,
        description="How long the old key keeps working (0 revokes it at once)",
    )
    expires_in_days: Days | None = Field(
        default=None, description="New key's lifetime; default the old one's"
    )


class KeyOut(BaseModel):
    id: str
    name: str
    roles: list[str]
    groups: list[str]
    state: str = Field(description="active | expired | revoked")
    created_at: datetime
    created_by: str | None = None
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None
    rotated_from: str | None = Field(default=None, description="The key this one replaced")


class KeyCreated(BaseModel):
    key: KeyOut
    token: str = Field(description="The API key, shown once: store it now")


class TenantCreated(BaseModel):
    tenant: TenantOut
    admin_key: KeyCreated | None = None


class KeyList(BaseModel):
    items: list[KeyOut]


class TenantList(BaseModel):
    items: list[TenantOut]


class BindingCreate(_Body):
    subject_type: Literal["user", "group"] = Field(
        description="user: the token's `sub`; group: a value of its groups claim"
    )
    subject: str = Field(min_length=1, max_length=200)
    roles: list[Role] = Field(default=[], max_length=len(Role))
    groups: list[Annotated[str, Field(pattern=_GROUP)]] = Field(default=[], max_length=100)


class BindingOut(BaseModel):
    id: str
    subject_type: str
    subject: str
    roles: list[str]
    groups: list[str]
    created_by: str
    created_at: datetime


class BindingList(BaseModel):
    items: list[BindingOut]


class AuditEventOut(BaseModel):
    seq: int
    id: str
    at: str
    actor: str
    action: str
    subject_type: str
    subject_id: str
    data: dict[str, Any]
    hash: str


class AuditPage(BaseModel):
    items: list[AuditEventOut]
    next_before_seq: int | None = Field(description="Pass as `before_seq` for older events")


def _tenant_out(tenant: Tenant) -> dict[str, Any]:
    return TenantOut.model_validate(tenant, from_attributes=True).model_dump()


def _key_out(key: ApiKey) -> dict[str, Any]:
    now = datetime.now(UTC)
    if key.revoked_at is not None:
        state = "revoked"
    elif key.expires_at is not None and key.expires_at <= now:
        state = "expired"
    else:
        state = "active"
    return {
        "id": key.id,
        "name": key.name,
        "roles": list(key.roles),
        "groups": list(key.groups),
        "state": state,
        "created_at": key.created_at,
        "created_by": key.created_by,
        "expires_at": key.expires_at,
        "revoked_at": key.revoked_at,
        "last_used_at": key.last_used_at,
        "rotated_from": key.rotated_from,
    }


def _binding_out(binding: RoleBinding) -> dict[str, Any]:
    return BindingOut.model_validate(binding, from_attributes=True).model_dump()


def _created(found: tuple[ApiKey, str]) -> dict[str, Any]:
    key, token = found
    return {"key": _key_out(key), "token": token}


def _expiry(days: int | None) -> datetime | None:
    return datetime.now(UTC) + timedelta(days=days) if days is not None else None


# -- tenants -----------------------------------------------------------------------------
@router.get(
    "/v1/tenants",
    response_model=TenantList,
    summary="Tenants (platform admins)",
    responses=_ADMIN_RESPONSES,
)
def list_tenants(principal: PrincipalDep, container: ContainerDep) -> dict[str, Any]:
    return {"items": [_tenant_out(t) for t in container.admin.tenants(principal)]}


@router.post(
    "/v1/tenants",
    status_code=201,
    response_model=TenantCreated,
    summary="Create a tenant, optionally with its first admin key",
    responses={**_ADMIN_RESPONSES, **_CONFLICT},
)
def create_tenant(
    body: TenantCreate, principal: PrincipalDep, container: ContainerDep
) -> dict[str, Any]:
    tenant, first_key = container.admin.create_tenant(
        principal, body.slug, name=body.name, admin_key_name=body.admin_key_name
    )
    return {
        "tenant": _tenant_out(tenant),
        "admin_key": _created(first_key) if first_key else None,
    }


@router.get(
    "/v1/tenants/{slug}",
    response_model=TenantOut,
    summary="One tenant (platform admins)",
    responses=_ADMIN_RESPONSES,
)
def get_tenant(slug: SlugPath, principal: PrincipalDep, container: ContainerDep) -> dict[str, Any]:
    return _tenant_out(container.admin.tenant(principal, slug))


@router.patch(
    "/v1/tenants/{slug}",
    response_model=TenantOut,
    summary="Rename, disable or re-enable a tenant (platform admins)",
    responses={**_ADMIN_RESPONSES, **_CONFLICT},
)
def update_tenant(
    slug: SlugPath, body: TenantUpdate, principal: PrincipalDep, container: ContainerDep
) -> dict[str, Any]:
    tenant = container.admin.update_tenant(principal, slug, name=body.name, disabled=body.disabled)
    return _tenant_out(tenant)


# -- keys --------------------------------------------------------------------------------
@router.get(
    "/v1/keys",
    response_model=KeyList,
    summary="Your tenant's API keys (never their secrets)",
    responses=_ADMIN_RESPONSES,
)
def list_keys(principal: PrincipalDep, container: ContainerDep) -> dict[str, Any]:
    return {"items": [_key_out(k) for k in container.admin.keys(principal)]}


@router.post(
    "/v1/keys",
    status_code=201,
    response_model=KeyCreated,
    summary="Create an API key with rights you hold yourself",
    responses=_ADMIN_RESPONSES,
)
def create_key(body: KeyCreate, principal: PrincipalDep, container: ContainerDep) -> dict[str, Any]:
    return _created(
        container.admin.create_key(
            principal,
            name=body.name,
            roles=frozenset(body.roles),
            groups=frozenset(body.groups),
            expires_at=_expiry(body.expires_in_days),
        )
    )


@router.get(
    "/v1/keys/{key_id}",
    response_model=KeyOut,
    summary="One API key",
    responses=_ADMIN_RESPONSES,
)
def get_key(key_id: KeyIdPath, principal: PrincipalDep, container: ContainerDep) -> dict[str, Any]:
    return _key_out(container.admin.key(principal, key_id))


@router.post(
    "/v1/keys/{key_id}/rotate",
    status_code=201,
    response_model=KeyCreated,
    summary="Replace a key; the old one keeps working for the overlap, then expires",
    responses={**_ADMIN_RESPONSES, **_CONFLICT},
)
def rotate_key(
    key_id: KeyIdPath, body: KeyRotate, principal: PrincipalDep, container: ContainerDep
) -> dict[str, Any]:
    return _created(
        container.admin.rotate_key(
            principal,
            key_id,
            overlap=timedelta(seconds=body.overlap_seconds),
            expires_at=_expiry(body.expires_in_days),
        )
    )


@router.delete(
    "/v1/keys/{key_id}",
    response_model=KeyOut,
    summary="Revoke a key: its next request is refused",
    responses=_ADMIN_RESPONSES,
)
def revoke_key(
    key_id: KeyIdPath, principal: PrincipalDep, container: ContainerDep
) -> dict[str, Any]:
    return _key_out(container.admin.revoke_key(principal, key_id))


# -- role bindings -----------------------------------------------------------------------
@router.get(
    "/v1/bindings",
    response_model=BindingList,
    summary="Roles and groups granted to OIDC users and groups of your tenant",
    responses=_ADMIN_RESPONSES,
)
def list_bindings(principal: PrincipalDep, container: ContainerDep) -> dict[str, Any]:
    return {"items": [_binding_out(b) for b in container.admin.bindings(principal)]}


@router.post(
    "/v1/bindings",
    status_code=201,
    response_model=BindingOut,
    summary="Grant roles and access groups you hold to an OIDC user or group",
    responses={**_ADMIN_RESPONSES, **_CONFLICT},
)
def create_binding(
    body: BindingCreate, principal: PrincipalDep, container: ContainerDep
) -> dict[str, Any]:
    binding = container.admin.create_binding(
        principal,
        subject_type=body.subject_type,
        subject=body.subject,
        roles=frozenset(body.roles),
        groups=frozenset(body.groups),
    )
    return _binding_out(binding)


@router.delete(
    "/v1/bindings/{binding_id}",
    response_model=BindingOut,
    summary="Remove a binding: its users lose what it granted from their next request",
    responses=_ADMIN_RESPONSES,
)
def delete_binding(
    binding_id: BindingIdPath, principal: PrincipalDep, container: ContainerDep
) -> dict[str, Any]:
    return _binding_out(container.admin.delete_binding(principal, binding_id))


# -- audit -------------------------------------------------------------------------------
@router.get(
    "/v1/audit",
    response_model=AuditPage,
    summary="Your tenant's audit events, newest first",
    responses=_ADMIN_RESPONSES,
)
def list_audit(
    principal: PrincipalDep,
    container: ContainerDep,
    response: Response,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    # audit_events.seq is a 32-bit INTEGER: a larger value is a 422, not a database error.
    before_seq: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    action: Annotated[str | None, Query(pattern=r"^[a-z_]+(\.[a-z_]+)*$", max_length=64)] = None,
) -> dict[str, Any]:
    events: list[AuditEvent] = list(
        container.admin.audit_events(principal, limit=limit, before_seq=before_seq, action=action)
    )
    response.headers["Cache-Control"] = "no-store"
    items = [AuditEventOut.model_validate(e, from_attributes=True).model_dump() for e in events]
    return {
        "items": items,
        "next_before_seq": events[-1].seq if len(events) == limit else None,
    }
