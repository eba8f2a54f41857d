"""Kind ``extract``: the CRF span tagger learns slots from labelled spans (Restaurants-8K)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from shipyard.api.app import create_app
from shipyard.bootstrap import Container
from shipyard.errors import DataInvalid
from shipyard.evaluation.datasets import read_examples
from shipyard.evaluation.metrics.slots import slot_metrics
from shipyard.kinds.base import Example
from shipyard.kinds.extract import ExtractKind, ExtractRunner
from shipyard.providers.local import ArtifactStore
from shipyard.spec import TaskSpec, load_project, output_model
from tests.conftest import ROOT, make_container, new_tenant

EXAMPLE = ROOT / "examples" / "booking-extract"
TASK = "booking-fields"
SLOTS = ["people", "date", "time", "first_name", "last_name"]
TRAIN_ROWS = 600
# Measured with 600 training rows on the 820 dev rows: people 0.85, date 0.89, time 0.91,
# first_name 0.88, last_name 0.86, micro 0.88. The floors leave room for platform noise only.
FLOORS = {
    "people_f1": 0.80,
    "date_f1": 0.84,
    "time_f1": 0.86,
    "first_name_f1": 0.80,
    "last_name_f1": 0.80,
    "micro_f1": 0.84,
}


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


def _small_project(directory: Path, train_rows: list[dict[str, Any]]) -> Path:
    """The example project with a slice of its training data."""
    shutil.copytree(EXAMPLE / "tasks", directory / "tasks")
    shutil.copy(EXAMPLE / "shipyard.yaml", directory / "shipyard.yaml")
    (directory / "data").mkdir()
    _write_jsonl(directory / "data" / "train.jsonl", train_rows)
    dev = _read_jsonl(EXAMPLE / "data" / "dev.jsonl")[:100]
    _write_jsonl(directory / "data" / "dev.jsonl", dev)
    return directory


def _examples(spec: TaskSpec, path: Path) -> list[Example]:
    assert spec.training is not None
    return read_examples(path, spec.training.input, {"label": spec.training.label})


@pytest.fixture(scope="module")
def spec() -> TaskSpec:
    return load_project(EXAMPLE).tasks[TASK]


@pytest.fixture(scope="module")
def trained(spec: TaskSpec, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ExtractRunner]:
    work = tmp_path_factory.mktemp("extract")
    train_file = work / "train.jsonl"
    _write_jsonl(train_file, _read_jsonl(EXAMPLE / "data" / "train.jsonl")[:TRAIN_ROWS])
    out_dir = work / "model"
    kind = ExtractKind()
    metadata = kind.train(spec, _examples(spec, train_file), out_dir, lambda _m: None)
    assert metadata["n_examples"] == TRAIN_ROWS
    return out_dir, kind.load(spec, out_dir, None)


@pytest.fixture(scope="module")
def dev_rows() -> list[dict[str, Any]]:
    return _read_jsonl(EXAMPLE / "data" / "dev.jsonl")


def test_held_out_f1_per_field_is_above_the_measured_floor(
    trained: tuple[Path, ExtractRunner], dev_rows: list[dict[str, Any]]
) -> None:
    _, runner = trained
    outputs = [result.output for result in runner.run_many([{"text": r["text"]} for r in dev_rows])]
    metrics, _ = slot_metrics(dev_rows, outputs, SLOTS)
    low = {name: round(metrics[name], 3) for name, floor in FLOORS.items() if metrics[name] < floor}
    assert not low, f"below the floor: {low}"


def test_outputs_are_typed_and_quote_the_input(
    spec: TaskSpec, trained: tuple[Path, ExtractRunner], dev_rows: list[dict[str, Any]]
) -> None:
    _, runner = trained
    model = output_model(spec)
    filled = 0
    for row in dev_rows[:200]:
        result = runner.run({"text": row["text"]})
        model.model_validate(result.output)  # the API's own output check
        assert set(result.output) == set(spec.output)
        assert result.confidence is not None
        assert 0.0 <= result.confidence <= 1.0
        assert result.output["confidence"] == result.confidence
        for slot in SLOTS:
            value = result.output[slot]
            if value is not None:
                filled += 1
                assert value in row["text"]
    assert filled > 100  # most rows mention something; an all-null tagger must not pass


def test_a_specific_booking_is_read_field_by_field(trained: tuple[Path, ExtractRunner]) -> None:
    _, runner = trained
    output = runner.run({"text": "Can I book a table for 4 people on Friday at 7pm?"}).output
    assert (output["people"], output["date"], output["time"]) == ("4 people", "Friday", "7pm")
    assert (output["first_name"], output["last_name"]) == (None, None)


def test_an_undeclared_slot_is_refused_with_its_line(spec: TaskSpec, tmp_path: Path) -> None:
    rows = _read_jsonl(EXAMPLE / "data" / "train.jsonl")[:5]
    rows[3]["spans"] = [{"slot": "table_area", "start": 0, "end": 3}]
    path = tmp_path / "train.jsonl"
    _write_jsonl(path, rows)
    with pytest.raises(DataInvalid) as info:
        ExtractKind().train(spec, _examples(spec, path), tmp_path / "model", lambda _m: None)
    [problem] = info.value.problems
    assert problem.line == 4
    assert problem.field == "spans"
    assert "'table_area' is not a declared output field" in problem.message
    assert "data/train.jsonl:4" in str(info.value)


@pytest.mark.parametrize(
    ("spans", "message"),
    [
        ([{"slot": "people", "start": 5, "end": 500}], "not a non-empty range"),
        ([{"slot": "people", "start": True, "end": 2}], "whole numbers"),
        ([{"slot": "people", "start": 0, "end": 2, "value": "xyz"}], "is not the text"),
        ("not json", "JSON list"),
    ],
)
def test_malformed_spans_are_refused(
    spec: TaskSpec, tmp_path: Path, spans: Any, message: str
) -> None:
    rows = [{"text": "for 2 people", "spans": spans}]
    path = tmp_path / "train.jsonl"
    _write_jsonl(path, rows)
    with pytest.raises(DataInvalid) as info:
        ExtractKind().train(spec, _examples(spec, path), tmp_path / "model", lambda _m: None)
    assert info.value.problems[0].line == 1
    assert message in info.value.problems[0].message


def test_artifact_round_trip_predicts_the_same(
    spec: TaskSpec,
    trained: tuple[Path, ExtractRunner],
    dev_rows: list[dict[str, Any]],
    tmp_path: Path,
) -> None:
    out_dir, runner = trained
    store = ArtifactStore(tmp_path / "store")
    digest = store.put(out_dir, {"task": TASK})
    loaded = ExtractKind().load(spec, store.path(digest), digest)
    batch = [{"text": row["text"]} for row in dev_rows[:300]]
    assert loaded.artifact == digest
    assert [r.output for r in loaded.run_many(batch)] == [r.output for r in runner.run_many(batch)]
    assert not list(out_dir.glob("*.pkl"))


@pytest.mark.parametrize(
    ("field", "message"),
    [
        ({"type": "string"}, "required: false"),
        ({"type": "integer", "required": False}, "use string"),
    ],
)
def test_extract_outputs_must_be_optional_strings(
    spec: TaskSpec, field: dict[str, Any], message: str
) -> None:
    data = spec.model_dump(exclude_none=True)
    data["output"]["people"] = field
    with pytest.raises(ValidationError, match=message):
        TaskSpec.model_validate(data)


def test_confidence_must_be_a_number(spec: TaskSpec) -> None:
    data = spec.model_dump(exclude_none=True)
    data["output"]["confidence"] = {"type": "string", "required": False}
    with pytest.raises(ValidationError, match="'confidence' of type number"):
        TaskSpec.model_validate(data)


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Container]]:
    rows = _read_jsonl(EXAMPLE / "data" / "train.jsonl")[:TRAIN_ROWS]
    project = _small_project(tmp_path_factory.mktemp("booking"), rows)
    state = tmp_path_factory.mktemp("booking-state")
    container = make_container(project, state, f"sqlite:///{state / 'db.sqlite'}")
    container.training.train(TASK, actor="tests")
    with TestClient(create_app(container), raise_server_exceptions=False) as client:
        yield client, container
    container.close()


def test_the_api_serves_extracted_fields(api: tuple[TestClient, Container]) -> None:
    client, container = api
    auth = new_tenant(container).auth()
    text = "A table for 2 tomorrow at 19:30 under the name Anna Smith"
    response = client.post(f"/v1/tasks/{TASK}/runs", json={"input": {"text": text}}, headers=auth)
    assert response.status_code == 201, response.text
    output = response.json()["output"]
    assert (output["people"], output["date"], output["time"]) == ("2", "tomorrow", "19:30")
    assert set(output) == {*SLOTS, "confidence"}
    assert all(output[slot] is None or output[slot] in text for slot in SLOTS)


def test_evaluation_reports_slot_metrics_and_gates(api: tuple[TestClient, Container]) -> None:
    _, container = api
    report = container.evaluations.evaluate(TASK, actor="tests")
    metrics = report["metrics"]
    assert {"micro_f1", "exact_match", "people_f1", "time_recall"} <= set(metrics)
    assert metrics["micro_f1"] > 0.8
    # 600 training rows cannot reach the example's gates (set for all 7,378 rows).
    assert [gate["metric"] for gate in report["gates"] if not gate["passed"]]
    assert not report["passed"]
