"""Scheduled signed checkpoints of the audit chain head (see :mod:`shipyard.jobs.periodic`).

A checkpoint only helps against truncation if one exists that the attacker cannot rewrite; a
schedule makes sure one does without anyone remembering to run ``shipyard audit checkpoint``.
Export them regularly (``shipyard audit export-checkpoints``) to somewhere outside the database.
"""

from __future__ import annotations

import logging

from shipyard.bootstrap import Container
from shipyard.governance.checkpoints import Checkpoint, load_private_key
from shipyard.jobs.periodic import PeriodicJob

log = logging.getLogger("shipyard.audit")


def make_checkpoint_scheduler(container: Container) -> PeriodicJob[Checkpoint | None] | None:
    """The API's checkpoint thread, or None: no signing key, interval 0, or Celery beat's job.
    A signing key that does not load raises ConfigError here, at start-up."""
    settings = container.settings
    secret = settings.audit_signing_key
    if (
        settings.jobs == "celery"
        or secret is None
        or settings.audit_checkpoint_interval_seconds <= 0
    ):
        return None
    private_key = load_private_key(secret.get_secret_value())
    service = container.audit

    def sign() -> Checkpoint | None:
        checkpoint = service.checkpoint_if_moved(private_key)
        if checkpoint is not None:
            log.info(
                "audit checkpoint signed",
                extra={"seq": checkpoint.seq, "key_id": checkpoint.key_id},
            )
        return checkpoint

    return PeriodicJob("audit-checkpoint", sign, settings.audit_checkpoint_interval_seconds)
