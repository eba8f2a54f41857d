"""``shipyard bindings create|list|delete`` (no trained model needed)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.cli.conftest import invoke


@pytest.fixture(scope="module")
def plain_project(tiny_project: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("bindings-cli") / "project"
    shutil.copytree(tiny_project, target, ignore=shutil.ignore_patterns(".shipyard"))
    return target


def test_bindings_create_list_delete(plain_project: Path) -> None:
    code, output = invoke(
        plain_project, "bindings", "create", "--group", "/support", "-r", "caller", "--groups", "hr"
    )
    assert code == 0, output
    match = re.search(r"binding ([0-9a-f-]{36})", output)
    assert match is not None, output
    binding_id = match.group(1)
    code, listing = invoke(plain_project, "bindings", "list")
    assert code == 0, listing
    assert binding_id in listing
    code, output = invoke(plain_project, "bindings", "delete", binding_id)
    assert code == 0, output
    assert "deleted" in output
    code, output = invoke(plain_project, "audit", "verify")
    assert code == 0, output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("create", "-r", "caller"), "exactly one of --user and --group"),
        (("create", "--user", "a", "--group", "b", "-r", "caller"), "exactly one"),
        (("create", "--user", "alice", "-r", "wizard"), "unknown role"),
        (("create", "--user", "alice"), "at least one role or access group"),
        (("create", "--user", "alice", "-r", "caller", "--groups", "bad group"), "access group"),
        (("create", "--user", "alice", "-r", "caller", "--tenant", "nope"), "no tenant"),
        (("delete", "00000000-0000-0000-0000-000000000000"), "no binding"),
        (("list", "--tenant", "nope"), "no tenant"),
    ],
)
def test_bad_input_exits_2_with_a_message(
    plain_project: Path, args: tuple[str, ...], message: str
) -> None:
    code, output = invoke(plain_project, "bindings", *args)
    assert code == 2, output
    assert message in output


def test_a_duplicate_binding_exits_2(plain_project: Path) -> None:
    assert invoke(plain_project, "bindings", "create", "--user", "zoe", "-r", "reviewer")[0] == 0
    code, output = invoke(plain_project, "bindings", "create", "--user", "zoe", "-r", "caller")
    assert code == 2
    assert "already has a binding" in output
