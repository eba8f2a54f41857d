"""Background jobs: one handler, two runners (in-process by default, Celery to scale out)."""
