"""``shipyard worker``: a Celery worker that indexes the documents the API accepted."""

from __future__ import annotations

import enum
import logging
from pathlib import Path
from typing import Annotated

import typer

from shipyard.cli.common import ProjectOption, fail, open_container


class Pool(enum.StrEnum):
    prefork = "prefork"  # one child process per slot, each with its own model session
    threads = "threads"  # one process: one shared model and engine, several tasks at once
    # Tasks run inside the consumer loop. Least memory, but on RabbitMQ with prefetch 1
    # (Celery 5.7) it stalls for up to 10 s between some tasks; fine on Redis.
    solo = "solo"


def worker(
    project: ProjectOption = Path("."),
    concurrency: Annotated[
        int, typer.Option(min=1, help="Documents indexed at once (prefork or threads pool)")
    ] = 1,
    pool: Annotated[Pool, typer.Option(help="How tasks are run")] = Pool.prefork,
    loglevel: Annotated[str, typer.Option(help="Log level of the worker")] = "INFO",
) -> None:
    """Run a Celery worker for ingestion jobs (needs SHIPYARD_BROKER_URL).

    On start it re-queues every document still pending, so work accepted while the broker
    or all workers were down is picked up; the database schema is upgraded first."""
    from shipyard.jobs.celery_app import QUEUE, make_celery
    from shipyard.observability.logging import configure_logging

    if loglevel.upper() not in logging.getLevelNamesMapping():
        raise fail(f"unknown log level {loglevel!r}; use DEBUG, INFO, WARNING or ERROR")
    if pool is Pool.solo and concurrency != 1:
        raise fail("--pool solo runs one task at a time; use prefork or threads for more")
    settings = open_container(project, migrate=False).settings  # validated, nothing opened
    if not settings.broker_url:
        raise fail("no broker configured: set SHIPYARD_BROKER_URL (e.g. redis://localhost:6379/0)")
    # Tasks build their own container (after the fork, with prefork): this one only upgrades
    # the schema, and its connections are closed before the pool starts.
    open_container(project).close()
    settings = settings.model_copy(update={"jobs": "celery"})
    configure_logging(loglevel, json_format=settings.log_json)
    app = make_celery(settings)
    app.worker_main(
        [
            "worker",
            "--queues",
            QUEUE,
            "--concurrency",
            str(concurrency),
            "--pool",
            pool.value,
            "--loglevel",
            loglevel.upper(),
            # No cluster chatter: workers share nothing but the queue, so mingle, gossip and
            # event heartbeats only add start-up time and broker traffic.
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ]
    )


if __name__ == "__main__":  # python -m shipyard.cli.worker_cmd (before `shipyard worker` exists)
    typer.run(worker)
