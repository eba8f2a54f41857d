"""The Celery app for ``celery -A shipyard.jobs.celery_beat beat``: it sends the scheduled
jobs to the queue that ``shipyard worker`` processes consume:

- the retention purge (``shipyard.retention.purge``, every SHIPYARD_RETENTION_INTERVAL_SECONDS);
- the sweep of stale pending documents (``shipyard.ingest.sweep_pending``, every
  SHIPYARD_PENDING_SWEEP_SECONDS);
- with SHIPYARD_AUDIT_SIGNING_KEY set, the audit checkpoint (``shipyard.audit.checkpoint``,
  every SHIPYARD_AUDIT_CHECKPOINT_INTERVAL_SECONDS).

Settings come from the environment (SHIPYARD_PROJECT_DIR, SHIPYARD_BROKER_URL, ...), as for the
API. Run one beat per deployment; a second one only causes duplicate work, which finds nothing
left to do.
"""

from __future__ import annotations

from shipyard.jobs.celery_app import make_celery
from shipyard.settings import Settings

app = make_celery(Settings().model_copy(update={"jobs": "celery"}))
