"""``classify``: one label from a closed set, with a calibrated confidence.

Offline default model (``local`` / ``minilm-tfidf-logreg``): MiniLM embeddings + logistic
regression averaged with a TF-IDF logistic regression, temperature-calibrated
(see providers/local/text_classifier.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from shipyard.errors import ConfigError, DataInvalid, FieldProblem, ModelNotReady
from shipyard.kinds.base import Example, KindResult, Progress, RunContext
from shipyard.providers.local import MiniLMEmbedder, TextClassifier, train_text_classifier
from shipyard.spec import TaskSpec

LOCAL_MODEL = "minilm-tfidf-logreg"


def input_text(spec: TaskSpec, inputs: Mapping[str, Any]) -> str:
    """The text a classifier sees: the task's string input fields, in declared order."""
    parts = [str(inputs[name]) for name in spec.input if inputs.get(name) not in (None, "")]
    return "\n".join(parts)


def training_labels(spec: TaskSpec, examples: Sequence[Example], field: str) -> list[str]:
    """The rows' labels, checked against the enum output ``field`` (kind decide: ``decision``):
    an unknown label is a data error with its line; a model needs two distinct labels."""
    allowed = set(spec.output[field].values or [])
    problems = [
        FieldProblem(
            field, f"{ex.expected['label']!r} is not one of the task's labels", line=ex.line
        )
        for ex in examples
        if allowed and ex.expected["label"] not in allowed
    ]
    if problems:
        raise DataInvalid(f"{len(problems)} training row(s) have unknown labels", problems[:20])
    labels = [str(ex.expected["label"]) for ex in examples]
    if len(set(labels)) < 2:
        raise DataInvalid("training data needs at least two distinct labels")
    return labels


class ClassifyRunner:
    def __init__(self, spec: TaskSpec, model: TextClassifier, artifact: str | None) -> None:
        self._spec = spec
        self._model = model
        self._artifact = artifact

    @property
    def model_name(self) -> str:
        return f"{self._spec.model.provider}/{self._spec.model.model}"

    @property
    def artifact(self) -> str | None:
        return self._artifact

    def run(self, inputs: Mapping[str, Any], context: RunContext | None = None) -> KindResult:
        return self.run_many([inputs])[0]

    def out_of_fold(self) -> tuple[list[float], list[bool]]:
        """Confidence and correctness of each training example when held out."""
        return (
            [float(c) for c in self._model.oof_confidence],
            [bool(c) for c in self._model.oof_correct],
        )

    def run_many(
        self, batch: Sequence[Mapping[str, Any]], context: RunContext | None = None
    ) -> list[KindResult]:
        """Classify a batch in one model call (evaluation, batch jobs): embedding is far
        cheaper per text in batches. ``model_ms`` is the batch time shared equally."""
        started = time.perf_counter()
        predictions = self._model.predict([input_text(self._spec, inputs) for inputs in batch])
        model_ms = (time.perf_counter() - started) * 1000 / max(1, len(batch))
        results = []
        for prediction in predictions:
            confidence = round(float(prediction.confidence), 4)
            output = {"label": prediction.label, "confidence": confidence}
            results.append(KindResult(output, confidence, model_ms))
        return results


class ClassifyKind:
    name = "classify"
    needs_training = True

    def __init__(self, embedder: Callable[[], MiniLMEmbedder]) -> None:
        # The embedder is shared by every task and created on first use, not at start-up.
        self._embedder = embedder

    def _check_route(self, spec: TaskSpec) -> None:
        if (spec.model.provider, spec.model.model) != ("local", LOCAL_MODEL):
            raise ConfigError(
                f"task {spec.name}: kind classify supports model local/{LOCAL_MODEL} for now, "
                f"not {spec.model.provider}/{spec.model.model}"
            )

    def train(
        self, spec: TaskSpec, examples: Sequence[Example], out_dir: Path, progress: Progress
    ) -> dict[str, Any]:
        self._check_route(spec)
        labels = training_labels(spec, examples, "label")
        texts = [input_text(spec, ex.inputs) for ex in examples]
        model = train_text_classifier(
            texts,
            labels,
            self._embedder(),
            seed=spec.training.seed if spec.training else 0,
            progress=progress,
        )
        model.save(out_dir)
        return model.metadata()

    def load(
        self, spec: TaskSpec, artifact_dir: Path | None, artifact: str | None
    ) -> ClassifyRunner:
        self._check_route(spec)
        if artifact_dir is None:
            raise ModelNotReady(
                f"task {spec.name} v{spec.version} has no trained model; "
                f"run `shipyard train {spec.name}`"
            )
        return ClassifyRunner(spec, TextClassifier.load(artifact_dir, self._embedder()), artifact)
