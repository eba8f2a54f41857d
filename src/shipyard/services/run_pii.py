"""Screening a run's input (injection, PII) and revealing a redacted run's originals.

Reveal (``GET /v1/runs/{id}?reveal_pii=true``) is allowed to holders of ``pii:reveal``
(admins) and to the roles the task's ``pii.reveal_roles`` names; it is recorded in the audit
chain (``run.pii_revealed``, with the entity counts, never the values). The originals are only
put back into the returned copy of the run, never written.
"""

from __future__ import annotations

from shipyard.access.principal import Principal
from shipyard.access.roles import Operation, allowed
from shipyard.errors import Conflict, Forbidden
from shipyard.governance import audit
from shipyard.governance.pii import PiiScreen, VaultError, restore
from shipyard.governance.screening import PII_REDACTED, Screened
from shipyard.spec import Project
from shipyard.storage.db import SessionFactory
from shipyard.storage.tables import Run

__all__ = ["reveal", "seal"]


def seal(screen: PiiScreen | None, run: Run, screened: Screened) -> None:
    """Record the screening on a new run: entity counts and, if reversible, sealed originals."""
    run.pii_entities = screened.pii_entities
    run.pii_vault = (
        screen.seal(run.id, screened.originals)
        if screen is not None and screened.originals
        else None
    )


def reveal(
    sessions: SessionFactory,
    project: Project,
    screen: PiiScreen | None,
    principal: Principal,
    run: Run,
) -> Run:
    """``run`` (detached) with its placeholders restored, for a caller allowed to see them."""
    spec = project.tasks.get(run.task)
    roles = spec.pii.reveal_roles if spec is not None else []
    if not (
        allowed(principal.roles, Operation.PII_REVEAL)
        or any(role.value in roles for role in principal.roles)
    ):
        raise Forbidden(
            f"revealing personal data of task {run.task} needs the admin role"
            + (f" or one of: {', '.join(roles)}" if roles else "")
        )
    if PII_REDACTED not in run.flags:
        return run  # nothing was redacted: the run is shown as it is
    if run.pii_vault is None or screen is None:
        raise Conflict(f"run {run.id} was redacted irreversibly (or purged): no originals are kept")
    try:
        originals = screen.open(run.id, run.pii_vault)
    except VaultError:
        raise Conflict(
            f"the originals of run {run.id} cannot be opened with this server's secret"
        ) from None
    with sessions.begin() as session:
        audit.append(
            session,
            actor=principal.actor,
            action="run.pii_revealed",
            subject_type="run",
            subject_id=run.id,
            tenant_id=run.tenant_id,
            data={"task": run.task, "version": run.version, "entities": run.pii_entities},
        )
    # Detached from its session (expire_on_commit=False): these changes are never written.
    run.input = restore(run.input, originals)
    if run.output is not None:
        run.output = restore(run.output, originals)
    return run
