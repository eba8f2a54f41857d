"""Pytest plugin (loaded from ``tests/conftest.py``): counts the Schemathesis cases that
``tests/api/test_fuzz.py`` runs, writes them to a JSON report and prints one summary line at
the end of the session, so CI logs record how much fuzzing ran.

The report goes to ``$SHIPYARD_FUZZ_REPORT`` or, by default, to
``<pytest basetemp>/.shipyard-fuzz-report.json``. Under pytest-xdist each worker hands its
tally to the controller (``workeroutput``), which writes the one report.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPORT_ENV = "SHIPYARD_FUZZ_REPORT"
_WORKER_KEY = "shipyard_fuzz_tally"


@dataclass
class FuzzTally:
    """Cases run per backend and operation label (``"POST /v1/collections"``), stateful steps
    included; ``failed`` names the operations with at least one failing case."""

    cases: dict[str, Counter[str]] = field(default_factory=dict)
    stateful_steps: Counter[str] = field(default_factory=Counter)
    failed: set[str] = field(default_factory=set)
    settings: dict[str, Any] = field(default_factory=dict)

    def count(self, backend: str, operation: str, *, stateful: bool = False) -> None:
        self.cases.setdefault(backend, Counter())[operation] += 1
        if stateful:
            self.stateful_steps[backend] += 1

    def fail(self, backend: str, operation: str) -> None:
        self.failed.add(f"{backend}: {operation}")

    @property
    def total(self) -> int:
        return sum(sum(counts.values()) for counts in self.cases.values())

    @property
    def operations(self) -> set[str]:
        return {operation for counts in self.cases.values() for operation in counts}

    def as_dict(self) -> dict[str, Any]:
        per_operation: Counter[str] = Counter()
        for counts in self.cases.values():
            per_operation.update(counts)
        return {
            "cases": self.total,
            "operations": len(self.operations),
            "failures": len(self.failed),
            "failed": sorted(self.failed),
            "stateful_steps": sum(self.stateful_steps.values()),
            "settings": self.settings,
            "backends": {
                backend: {
                    "cases": sum(counts.values()),
                    "stateful_steps": self.stateful_steps[backend],
                    "per_operation": dict(sorted(counts.items())),
                }
                for backend, counts in sorted(self.cases.items())
            },
            "per_operation": dict(sorted(per_operation.items())),
        }

    def merge(self, data: dict[str, Any]) -> None:
        for backend, entry in data.get("backends", {}).items():
            self.cases.setdefault(backend, Counter()).update(entry["per_operation"])
            self.stateful_steps[backend] += entry["stateful_steps"]
        self.failed |= set(data.get("failed", []))
        self.settings = self.settings or data.get("settings", {})


TALLY = pytest.StashKey[FuzzTally]()


def tally_of(config: pytest.Config) -> FuzzTally:
    if TALLY not in config.stash:
        config.stash[TALLY] = FuzzTally()
    return config.stash[TALLY]


@pytest.fixture(scope="session")
def fuzz_tally(pytestconfig: pytest.Config) -> FuzzTally:
    return tally_of(pytestconfig)


def pytest_sessionfinish(session: pytest.Session) -> None:
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: the controller reports
        workeroutput[_WORKER_KEY] = json.dumps(tally_of(session.config).as_dict())


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    data = getattr(node, "workeroutput", {}).get(_WORKER_KEY)
    if data:
        tally_of(node.config).merge(json.loads(data))


def report_path(config: pytest.Config) -> Path:
    configured = os.environ.get(REPORT_ENV)
    if configured:
        return Path(configured)
    return config._tmp_path_factory.getbasetemp() / ".shipyard-fuzz-report.json"  # type: ignore[attr-defined]


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):
        return
    tally = tally_of(config)
    if not tally.total:
        return
    path = report_path(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(tally.as_dict(), indent=2) + "\n")
    terminalreporter.write_line(
        f"schemathesis: {tally.total} cases over {len(tally.operations)} operations, "
        f"{len(tally.failed)} failures (report: {path})"
    )
