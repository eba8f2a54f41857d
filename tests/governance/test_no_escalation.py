"""Property: no principal can create (or rotate into being) a key with more rights than it
holds, whatever roles and groups it holds and asks for. Rights are the operations of its
roles and its access groups; checked through the real service and database, and by
authenticating the key that was made."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shipyard.access.grants import grant_problem
from shipyard.access.principal import Principal
from shipyard.access.roles import Operation, Role, allowed, operations
from shipyard.bootstrap import Container
from shipyard.errors import Forbidden
from tests.conftest import make_container, write_tiny_project

ROLES = st.frozensets(st.sampled_from(list(Role)), min_size=1)
GROUPS = st.frozensets(st.sampled_from(["hr", "finance", "legal"]))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Container, Principal]]:
    root: Path = tmp_path_factory.mktemp("escalation")
    project = write_tiny_project(root / "project")
    container = make_container(project, root / "state", f"sqlite:///{root / 'db.sqlite'}")
    tenant = container.access.create_tenant("esc", actor="tests")
    yield container, Principal(tenant.id, tenant.slug, "seed", "seed", frozenset(), frozenset())
    container.engine.dispose()


def as_principal(base: Principal, roles: frozenset[Role], groups: frozenset[str]) -> Principal:
    return Principal(base.tenant_id, base.tenant_slug, "granter", "granter", roles, groups)


def may_grant(
    held: frozenset[Role],
    held_groups: frozenset[str],
    roles: frozenset[Role],
    groups: frozenset[str],
) -> bool:
    return operations(roles) <= operations(held) and groups <= held_groups


@given(held=ROLES, held_groups=GROUPS, roles=ROLES, groups=GROUPS)
def test_grant_check_is_exactly_subset_of_rights(
    held: frozenset[Role],
    held_groups: frozenset[str],
    roles: frozenset[Role],
    groups: frozenset[str],
) -> None:
    principal = Principal("t", "t", "k", "k", held, held_groups)
    problem = grant_problem(principal, roles, groups)
    assert (problem is None) == may_grant(held, held_groups, roles, groups)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(held=ROLES, held_groups=GROUPS, roles=ROLES, groups=GROUPS)
def test_a_created_key_never_holds_more_than_its_creator(
    world: tuple[Container, Principal],
    held: frozenset[Role],
    held_groups: frozenset[str],
    roles: frozenset[Role],
    groups: frozenset[str],
) -> None:
    container, base = world
    granter = as_principal(base, held, held_groups)
    expected = allowed(held, Operation.KEY_MANAGE) and may_grant(held, held_groups, roles, groups)
    try:
        _key, token = container.admin.create_key(
            granter, name="prop", roles=roles, groups=groups, expires_at=None
        )
    except Forbidden:
        assert not expected
        return
    assert expected
    made = container.access.authenticate(token)
    assert operations(made.roles) <= operations(held)
    assert made.groups <= held_groups
    assert made.tenant_id == granter.tenant_id


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(held=ROLES, held_groups=GROUPS, roles=ROLES, groups=GROUPS)
def test_rotation_cannot_hand_out_a_key_beyond_the_rotators_rights(
    world: tuple[Container, Principal],
    held: frozenset[Role],
    held_groups: frozenset[str],
    roles: frozenset[Role],
    groups: frozenset[str],
) -> None:
    container, base = world
    target, _ = container.access.create_key(
        base.tenant_slug, name="target", roles=roles, groups=groups, expires_at=None, actor="t"
    )
    rotator = as_principal(base, held, held_groups)
    expected = allowed(held, Operation.KEY_MANAGE) and may_grant(held, held_groups, roles, groups)
    try:
        _new, token = container.admin.rotate_key(rotator, target.id, overlap=timedelta(minutes=5))
    except Forbidden:
        assert not expected
        return
    assert expected
    made = container.access.authenticate(token)
    assert operations(made.roles) <= operations(held)
    assert made.groups <= held_groups


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(held=ROLES, held_groups=GROUPS, roles=ROLES, groups=GROUPS)
def test_a_role_binding_never_grants_more_than_its_creator_holds(
    world: tuple[Container, Principal],
    held: frozenset[Role],
    held_groups: frozenset[str],
    roles: frozenset[Role],
    groups: frozenset[str],
) -> None:
    container, base = world
    granter = as_principal(base, held, held_groups)
    expected = allowed(held, Operation.BINDING_MANAGE) and may_grant(
        held, held_groups, roles, groups
    )
    try:
        binding = container.admin.create_binding(
            granter, subject_type="user", subject=uuid.uuid4().hex, roles=roles, groups=groups
        )
    except Forbidden:
        assert not expected
        return
    assert expected
    assert operations(Role(role) for role in binding.roles) <= operations(held)
    assert set(binding.groups) <= held_groups
