"""``shipyard keys rotate`` and ``shipyard tenants disable|enable``."""

from __future__ import annotations

from pathlib import Path

from shipyard.cli.common import open_container
from shipyard.errors import Unauthenticated
from tests.cli.conftest import invoke


def _token(output: str) -> str:
    return next(line for line in output.splitlines() if line.startswith("sy_"))


def _authenticates(project: Path, token: str) -> bool:
    try:
        open_container(project).access.authenticate(token)
    except Unauthenticated:
        return False
    return True


def test_rotate_prints_a_new_key_and_keeps_the_old_for_the_overlap(project: Path) -> None:
    code, output = invoke(project, "keys", "create", "--name", "etl", "--role", "caller")
    assert code == 0, output
    old = _token(output)
    code, output = invoke(project, "keys", "rotate", old.split("_")[1], "--overlap", "2h")
    assert code == 0, output
    new = _token(output)
    assert new != old
    assert _authenticates(project, old)
    assert _authenticates(project, new)
    code, listing = invoke(project, "keys", "list")
    assert new.split("_")[1] in listing


def test_rotate_with_zero_overlap_refuses_the_old_key_at_once(project: Path) -> None:
    code, output = invoke(project, "keys", "create", "--name", "etl2", "--role", "caller")
    old = _token(output)
    code, output = invoke(project, "keys", "rotate", old.split("_")[1], "--overlap", "0m")
    assert code == 0, output
    assert not _authenticates(project, old)
    assert _authenticates(project, _token(output))


def test_rotate_bad_input_exits_2(project: Path) -> None:
    code, output = invoke(project, "keys", "rotate", "nosuchkey123")
    assert code == 2
    assert "no key" in output
    code, output = invoke(project, "keys", "rotate", "nosuchkey123", "--overlap", "soon")
    assert code == 2
    assert "--overlap" in output


def test_disabled_tenant_is_refused_until_enabled(project: Path) -> None:
    assert invoke(project, "tenants", "create", "dormant", "--name", "Dormant Ltd")[0] == 0
    code, output = invoke(
        project, "keys", "create", "--name", "d", "--role", "caller", "--tenant", "dormant"
    )
    token = _token(output)
    assert _authenticates(project, token)
    code, output = invoke(project, "tenants", "disable", "dormant")
    assert code == 0, output
    assert not _authenticates(project, token)
    code, listing = invoke(project, "tenants", "list")
    assert "disabled" in listing
    assert "Dormant Ltd" in listing
    assert invoke(project, "tenants", "enable", "dormant")[0] == 0
    assert _authenticates(project, token)
    assert invoke(project, "tenants", "disable", "nosuch")[0] == 2
