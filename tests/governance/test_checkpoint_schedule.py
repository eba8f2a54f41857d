"""Scheduled audit checkpoints: signed only when the head moved, by an API thread or Celery
beat, with a signing key that must load at start-up."""

from __future__ import annotations

import base64
import shutil
import threading
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from fastapi.testclient import TestClient
from pydantic import SecretStr

from shipyard.api.app import create_app
from shipyard.bootstrap import Container, build
from shipyard.errors import ConfigError
from shipyard.jobs.audit_checkpoints import make_checkpoint_scheduler
from shipyard.jobs.periodic import PeriodicJob
from shipyard.settings import Settings
from tests.cli.conftest import invoke
from tests.governance.test_audit_checkpoints import KEY, add_keys, chain  # noqa: F401

RAW_KEY = base64.b64encode(
    KEY.private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )
).decode()


def _with(container: Container, **update: object) -> None:
    container.settings = container.settings.model_copy(update=update)


def test_a_checkpoint_is_signed_only_when_the_head_moved(chain: Container) -> None:  # noqa: F811
    first = chain.audit.checkpoint_if_moved(KEY)
    assert first is not None
    assert chain.audit.checkpoint_if_moved(KEY) is None  # an idle chain adds nothing
    add_keys(chain, 1, "later")
    second = chain.audit.checkpoint_if_moved(KEY)
    assert second is not None
    assert second.seq == first.seq + 1
    assert [cp.seq for cp in chain.audit.checkpoints()] == [first.seq, second.seq]
    assert chain.audit.verify_checkpoints(chain.audit.checkpoints(), KEY.public_key()) == []


def test_the_scheduler_signs_with_the_configured_key(chain: Container) -> None:  # noqa: F811
    assert make_checkpoint_scheduler(chain) is None  # no signing key: nothing to schedule
    _with(chain, audit_signing_key=SecretStr(RAW_KEY))
    job = make_checkpoint_scheduler(chain)
    assert isinstance(job, PeriodicJob)
    signed = job.run_once()
    assert signed is not None
    assert job.run_once() is None
    assert chain.audit.verify_checkpoints(chain.audit.checkpoints(), KEY.public_key()) == []
    for off in ({"audit_checkpoint_interval_seconds": 0}, {"jobs": "celery"}):
        _with(chain, **off)
        assert make_checkpoint_scheduler(chain) is None
        _with(chain, audit_checkpoint_interval_seconds=3600, jobs="inprocess")


def test_a_failing_checkpoint_is_logged_and_retried_not_raised() -> None:
    def boom() -> None:
        raise RuntimeError("database down")

    job = PeriodicJob("audit-checkpoint", boom, interval=3600)
    assert job.run_once() is None
    job.start()
    job.stop()


def test_a_bad_signing_key_stops_the_app_from_starting(chain: Container) -> None:  # noqa: F811
    _with(chain, audit_signing_key=SecretStr("not a key"))
    with pytest.raises(ConfigError, match="audit signing key") as caught:
        create_app(chain)
    assert "not a key" not in str(caught.value)
    _with(chain, audit_signing_key=SecretStr(RAW_KEY))
    with TestClient(create_app(chain)) as client:
        assert client.get("/healthz").status_code == 200


def test_celery_beat_schedules_checkpoints_when_a_key_is_set(tmp_path: Path) -> None:
    from shipyard.jobs.celery_app import CHECKPOINT_TASK, make_celery

    settings = Settings(
        project_dir=tmp_path,
        broker_url="memory://",
        jobs="celery",
        audit_checkpoint_interval_seconds=900,
    )
    without_key = make_celery(settings)
    try:
        assert "shipyard-audit-checkpoint" not in without_key.conf.beat_schedule
    finally:
        without_key.close()
    app = make_celery(settings.model_copy(update={"audit_signing_key": SecretStr(RAW_KEY)}))
    try:
        assert CHECKPOINT_TASK in app.tasks
        entry = app.conf.beat_schedule["shipyard-audit-checkpoint"]
        assert (entry["task"], entry["schedule"]) == (CHECKPOINT_TASK, 900.0)
    finally:
        app.close()


def test_a_bad_signing_key_stops_every_entry_point(
    tiny_project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Not only the API with its in-process schedule: Celery workers and the CLI build the same
    # container, so a key that would make every scheduled checkpoint fail stops them too.
    with pytest.raises(ConfigError, match="audit signing key") as caught:
        build(Settings(project_dir=tiny_project, data_dir=tmp_path, audit_signing_key="c2VjcmV0"))
    assert "c2VjcmV0" not in str(caught.value)
    monkeypatch.setenv("SHIPYARD_AUDIT_SIGNING_KEY", "not a key")
    monkeypatch.setenv("SHIPYARD_SECRET_KEY", "test-secret-key-" + "x" * 32)
    project = tmp_path / "project"
    shutil.copytree(tiny_project, project)
    code, output = invoke(project, "audit", "verify")
    assert code == 2, output
    assert "audit signing key" in output
    assert "not a key" not in output


def test_processes_on_the_same_schedule_sign_a_head_once(chain: Container) -> None:  # noqa: F811
    start = threading.Barrier(6)
    signed: list[object] = []

    def tick() -> None:
        start.wait()
        signed.append(chain.audit.checkpoint_if_moved(KEY))

    threads = [threading.Thread(target=tick) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(signed) == 6
    assert len([cp for cp in signed if cp is not None]) == 1
    assert len(chain.audit.checkpoints()) == 1
