"""Evaluate a task version on its dataset, apply gates and the regression check, store it."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shipyard.errors import InvalidInput
from shipyard.evaluation.datasets import file_sha256, read_examples
from shipyard.evaluation.scoring import LOWER_IS_BETTER, SCORING, CaseResult
from shipyard.governance import audit
from shipyard.kinds.base import RunContext, TaskRunner
from shipyard.knowledge.groups import caller_groups
from shipyard.services.runtime import TaskRuntime
from shipyard.spec import Project, TaskSpec
from shipyard.storage.db import SessionFactory
from shipyard.storage.repositories import EvaluationRepository, TenantRepository
from shipyard.storage.tables import Evaluation

BATCH = 64
# Called with (cases done, cases in all) as the evaluation advances.
CaseProgress = Callable[[int, int], None]


def _check_metric_names(spec: TaskSpec) -> None:
    """Gate and max_drop names must be metrics this kind reports: a typo must not silently
    switch a check off. Checked before any prediction is made."""
    assert spec.evaluation is not None
    known = SCORING[spec.kind].metric_names(spec)
    sections = (("gates", spec.evaluation.gates), ("max_drop", spec.evaluation.max_drop))
    for section, names in sections:
        for name in names:
            if name not in known:
                raise InvalidInput(
                    f"evaluation.{section}.{name}: no such metric for this task; "
                    f"available: {', '.join(sorted(known))}"
                )


def _gates(spec: TaskSpec, metrics: dict[str, float]) -> list[dict[str, Any]]:
    assert spec.evaluation is not None
    results = []
    for metric, threshold in spec.evaluation.thresholds.items():
        # A known metric can be undefined on this data (no out-of-scope rows, nothing
        # answered): the gate cannot be shown to hold, so it fails.
        value = metrics.get(metric)
        results.append(
            {
                "metric": metric,
                "op": threshold.op,
                "threshold": threshold.value,
                "value": value,
                "passed": value is not None and threshold.passes(value),
            }
        )
    return results


def _regression(
    spec: TaskSpec, metrics: dict[str, float], previous: Evaluation | None
) -> list[dict[str, Any]]:
    assert spec.evaluation is not None
    if previous is None:
        return []
    results = []
    for metric, max_drop in spec.evaluation.max_drop.items():
        before = previous.metrics.get(metric)
        value = metrics.get(metric)
        if before is None or value is None:
            continue
        drop = (value - before) if metric in LOWER_IS_BETTER else (before - value)
        results.append(
            {
                "metric": metric,
                "previous": before,
                "value": value,
                "max_drop": max_drop,
                "drop": drop,
                "passed": drop <= max_drop + 1e-12,
            }
        )
    return results


class EvaluationService:
    def __init__(self, sessions: SessionFactory, project: Project, runtime: TaskRuntime) -> None:
        self._sessions = sessions
        self._project = project
        self._runtime = runtime

    def _spec(self, task: str) -> TaskSpec:
        spec = self._project.task(task)
        if spec.evaluation is None:
            raise InvalidInput(f"task {task} has no `evaluation` block in its spec")
        if spec.kind not in SCORING:
            raise InvalidInput(f"kind {spec.kind} has no evaluation metrics yet")
        return spec

    def _context(self, spec: TaskSpec) -> RunContext | None:
        """Knowledge tasks retrieve as the project's default tenant with the spec's groups."""
        if spec.knowledge is None:
            return None
        assert spec.evaluation is not None
        slug = self._project.config.default_tenant
        with self._sessions() as session:
            tenant = TenantRepository(session).by_slug(slug)
        if tenant is None:
            raise InvalidInput(f"no tenant {slug!r} to evaluate in; run `shipyard db upgrade`")
        return RunContext(tenant.id, caller_groups(spec.evaluation.groups))

    @staticmethod
    def _predict(
        runner: TaskRunner,
        inputs: Sequence[dict[str, Any]],
        progress: CaseProgress,
        context: RunContext | None = None,
    ) -> list[tuple[dict[str, Any], float | None]]:
        results: list[tuple[dict[str, Any], float | None]] = []
        for start in range(0, len(inputs), BATCH):
            batch = runner.run_many(inputs[start : start + BATCH], context)
            results.extend((result.output, result.confidence) for result in batch)
            progress(len(results), len(inputs))
        return results

    def evaluate(
        self,
        task: str,
        *,
        dataset: Path | None = None,
        actor: str = "cli",
        progress: CaseProgress | None = None,
    ) -> dict[str, Any]:
        spec = self._spec(task)
        assert spec.evaluation is not None
        _check_metric_names(spec)
        mapping = spec.evaluation.dataset
        path = dataset if dataset is not None else self._project.path(mapping.path)
        examples = read_examples(
            path,
            mapping.input,
            mapping.expected,
            empty_expected=SCORING[spec.kind].empty_expected,
        )
        runner = self._runtime.runner(task)
        started = time.perf_counter()
        predictions = self._predict(
            runner,
            [ex.inputs for ex in examples],
            progress or (lambda _done, _total: None),
            self._context(spec),
        )
        seconds = time.perf_counter() - started
        scoring = SCORING[spec.kind]
        cases = [
            CaseResult(
                ex.line,
                ex.inputs,
                ex.expected,
                output,
                confidence,
                scoring.correct(ex.expected, output),
            )
            for ex, (output, confidence) in zip(examples, predictions, strict=True)
        ]
        metrics, details = scoring.score(spec, cases)
        dataset_sha = file_sha256(path)
        gates = _gates(spec, metrics)
        with self._sessions() as session:
            # The baseline is the last evaluation that passed: a failed one must not become
            # the bar that the next run is compared with (re-running would then "pass").
            previous = EvaluationRepository(session).latest(
                task, dataset_sha256=dataset_sha, passed_only=True
            )
        regression = _regression(spec, metrics, previous)
        passed = all(g["passed"] for g in gates) and all(r["passed"] for r in regression)
        shown_path = str(path if dataset is not None else mapping.path)
        report: dict[str, Any] = {
            "id": str(uuid.uuid4()),
            "task": spec.name,
            "version": spec.version,
            "kind": spec.kind,
            "artifact": runner.artifact,
            "dataset": {"path": shown_path, "sha256": dataset_sha, "rows": len(cases)},
            "created_at": datetime.now(UTC).isoformat(),
            "duration_seconds": round(seconds, 3),
            "cases_per_second": round(len(cases) / seconds, 1) if seconds > 0 else None,
            "metrics": metrics,
            "gates": gates,
            "regression": regression,
            "previous": _summary(previous) if previous else None,
            "passed": passed,
            "details": details,
            "cases": [case.as_json() for case in cases],
        }
        self._store(report, actor)
        return report

    def _store(self, report: dict[str, Any], actor: str) -> None:
        row = Evaluation(
            id=report["id"],
            task=report["task"],
            task_version=report["version"],
            artifact=report["artifact"],
            dataset_path=report["dataset"]["path"],
            dataset_sha256=report["dataset"]["sha256"],
            rows=report["dataset"]["rows"],
            metrics=report["metrics"],
            report={
                key: report[key]
                for key in (
                    "gates",
                    "regression",
                    "previous",
                    "details",
                    "duration_seconds",
                    "cases_per_second",
                    "kind",
                )
            },
            cases=report["cases"],
            passed=report["passed"],
            created_at=datetime.fromisoformat(report["created_at"]),
        )
        with self._sessions.begin() as session:
            audit.append(
                session,
                actor=actor,
                action="evaluation.completed",
                subject_type="task",
                subject_id=f"{row.task}@{row.task_version}",
                tenant_id=None,
                data={
                    "evaluation": row.id,
                    "artifact": row.artifact,
                    "passed": row.passed,
                    "dataset_sha256": row.dataset_sha256,
                    "metrics": row.metrics,
                },
            )
            EvaluationRepository(session).add(row)

    def list(self, task: str | None = None, *, limit: int = 50) -> list[dict[str, Any]]:
        if task is not None:
            self._project.task(task)  # NotFound for an unknown task
        with self._sessions() as session:
            rows = EvaluationRepository(session).for_task(task, limit=limit)
        return [_summary(row) for row in rows]


def _summary(row: Evaluation) -> dict[str, Any]:
    return {
        "id": row.id,
        "task": row.task,
        "version": row.task_version,
        "artifact": row.artifact,
        "dataset": {"path": row.dataset_path, "sha256": row.dataset_sha256, "rows": row.rows},
        "metrics": row.metrics,
        "gates": row.report.get("gates", []),
        "passed": row.passed,
        "created_at": row.created_at.isoformat(),
    }
