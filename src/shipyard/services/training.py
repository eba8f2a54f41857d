"""Train a task's model from the spec's training file and register the artifact."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shipyard.errors import InvalidInput
from shipyard.evaluation.datasets import file_sha256, read_examples
from shipyard.governance import audit
from shipyard.kinds.base import KindRegistry, Progress, trains
from shipyard.providers.local import ArtifactStore
from shipyard.spec import Project, TaskSpec
from shipyard.storage.db import SessionFactory
from shipyard.storage.repositories import ArtifactRepository
from shipyard.storage.tables import ModelArtifact


@dataclass(frozen=True)
class TrainingOutcome:
    task: str
    version: int
    digest: str
    metadata: dict[str, Any]


class TrainingService:
    def __init__(
        self,
        sessions: SessionFactory,
        project: Project,
        kinds: KindRegistry,
        store: ArtifactStore,
    ) -> None:
        self._sessions = sessions
        self._project = project
        self._kinds = kinds
        self._store = store

    def _training_file(self, spec: TaskSpec) -> Path:
        if spec.training is None:
            raise InvalidInput(f"task {spec.name} declares no training data")
        return self._project.path(spec.training.path)

    def is_trained(self, task: str) -> bool:
        """True when an artifact exists for this version trained on the current data file."""
        spec = self._project.task(task)
        if not trains(self._kinds.get(spec.kind), spec):
            return True
        data_hash = file_sha256(self._training_file(spec))
        with self._sessions() as session:
            latest = ArtifactRepository(session).latest(spec.name, spec.version)
        return latest is not None and latest.training_data_sha256 == data_hash

    def trainable_tasks(self) -> list[str]:
        """Tasks whose kind has a model to train (an ``answer`` task has none)."""
        return [
            name
            for name, spec in self._project.tasks.items()
            if trains(self._kinds.get(spec.kind), spec)
        ]

    def untrained_tasks(self) -> list[str]:
        return [name for name in self._project.tasks if not self.is_trained(name)]

    def train(self, task: str, *, actor: str, progress: Progress | None = None) -> TrainingOutcome:
        spec = self._project.task(task)
        kind = self._kinds.get(spec.kind)
        if spec.training is None:
            raise InvalidInput(f"task {spec.name} declares no training data")
        data_path = self._training_file(spec)
        examples = read_examples(data_path, spec.training.input, {"label": spec.training.label})
        report = progress or (lambda _message: None)
        self._store.root.mkdir(parents=True, exist_ok=True)
        work_dir = Path(tempfile.mkdtemp(prefix="train-", dir=self._store.root))
        try:
            metadata = kind.train(spec, examples, work_dir, report)
            metadata = {
                **metadata,
                "task": spec.name,
                "task_version": spec.version,
                "kind": spec.kind,
                "training_file": spec.training.path,
                "training_data_sha256": file_sha256(data_path),
                "trained_at": datetime.now(UTC).isoformat(),
            }
            digest = self._store.put(work_dir, metadata)
        finally:
            shutil.rmtree(work_dir, ignore_errors=True)
        with self._sessions.begin() as session:
            ArtifactRepository(session).add(
                ModelArtifact(
                    task=spec.name,
                    task_version=spec.version,
                    digest=digest,
                    training_data_sha256=metadata["training_data_sha256"],
                    details=metadata,
                    created_at=datetime.now(UTC),
                )
            )
            audit.append(
                session,
                actor=actor,
                action="model.trained",
                subject_type="task",
                subject_id=f"{spec.name}@{spec.version}",
                tenant_id=None,
                data={
                    "artifact": digest,
                    "examples": len(examples),
                    "training_data_sha256": metadata["training_data_sha256"],
                },
            )
        return TrainingOutcome(spec.name, spec.version, digest, metadata)
