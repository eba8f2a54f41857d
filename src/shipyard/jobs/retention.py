"""The scheduled retention purge of the in-process runner (see :mod:`shipyard.jobs.periodic`)."""

from __future__ import annotations

import logging

from shipyard.bootstrap import Container
from shipyard.jobs.periodic import PeriodicJob
from shipyard.services.retention import PurgeReport

log = logging.getLogger("shipyard.retention")


def make_retention_scheduler(container: Container) -> PeriodicJob[PurgeReport] | None:
    """The API's purge thread, or None when Celery beat schedules purges or the interval is 0."""
    settings = container.settings
    if settings.jobs == "celery" or settings.retention_interval_seconds <= 0:
        return None
    service = container.retention

    def purge() -> PurgeReport:
        report = service.purge()
        log.info(
            "retention purge finished",
            extra={"runs": report.total("runs"), "documents": report.total("documents")},
        )
        return report

    return PeriodicJob("retention", purge, settings.retention_interval_seconds)
