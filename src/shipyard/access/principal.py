"""Who is calling: resolved once per request, passed to every service call."""

from __future__ import annotations

from dataclasses import dataclass, field

from shipyard.access.roles import Role


@dataclass(frozen=True)
class Principal:
    tenant_id: str
    tenant_slug: str
    key_id: str | None
    name: str
    roles: frozenset[Role]
    # Knowledge access groups; "everyone" is always implied (see knowledge.types.EVERYONE).
    groups: frozenset[str] = field(default=frozenset())
    # A person signed in with OIDC: the token's ``sub``. ``key_id`` then holds a stable id
    # derived from issuer and subject ("u_..."), so "own runs" work as for a key.
    subject: str | None = None

    @property
    def actor(self) -> str:
        """How the audit trail names this principal (never the secret)."""
        if self.subject is not None:
            return f"user:{self.subject}"
        return f"key:{self.key_id}" if self.key_id else "cli"
