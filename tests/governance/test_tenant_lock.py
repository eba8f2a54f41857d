"""Check-then-write under the tenant's lock: servers starting together on a new database mint
one first admin key, not one each. Real threads, both backends."""

from __future__ import annotations

import threading
import uuid

from shipyard.access.roles import Role
from shipyard.bootstrap import Container
from tests.governance.test_budget_reservations import container  # noqa: F401  # fixture


def test_servers_starting_together_mint_one_first_admin_key(
    container: Container,  # noqa: F811
) -> None:
    slug = f"boot-{uuid.uuid4().hex[:8]}"
    container.access.create_tenant(slug, actor="tests")
    tokens: list[str | None] = []
    start = threading.Barrier(8)

    def serve() -> None:
        start.wait()
        tokens.append(container.access.ensure_admin_key(slug, name="bootstrap-admin", actor="cli"))

    threads = [threading.Thread(target=serve) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    minted = [token for token in tokens if token is not None]
    assert len(tokens) == 8
    assert len(minted) == 1
    keys = container.access.keys(slug)
    assert [set(key.roles) for key in keys] == [{Role.ADMIN.value, Role.PLATFORM_ADMIN.value}]
    assert container.access.authenticate(minted[0]).tenant_slug == slug
    # Revoked, it no longer counts: the next start mints a new one.
    container.access.revoke_key(keys[0].id, actor="tests")
    assert container.access.ensure_admin_key(slug, name="bootstrap-admin", actor="cli")
