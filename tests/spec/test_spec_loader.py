"""Loading specs from YAML: every problem names its file, line and field."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from spec_helpers import EXAMPLE_PROJECT, VALID_SPEC, ProblemsOf, line_with

from shipyard.errors import FieldProblem, NotFound, SpecInvalid
from shipyard.spec import (
    TaskSpec,
    Threshold,
    find_project_dir,
    load_project,
    load_task_spec,
)


def only(problems: list[FieldProblem], field: str) -> FieldProblem:
    matching = [p for p in problems if p.field == field]
    assert len(matching) == 1, problems
    return matching[0]


def test_valid_project_loads(project: Path) -> None:
    loaded = load_project(project)

    spec = loaded.task("ticket-triage")
    assert loaded.config.name == "demo"
    assert loaded.sources["ticket-triage"] == project / "tasks" / "ticket-triage.yaml"
    assert spec.output["label"].values == ["card_arrival", "billing", "other"]
    assert spec.output["label"].values_from is None
    assert spec.evaluation is not None
    assert spec.evaluation.thresholds["accuracy"] == Threshold(">=", 0.9)
    assert spec.policy.roles == ["caller", "operator", "admin"]
    assert loaded.path("data/train.csv") == project / "data" / "train.csv"
    with pytest.raises(NotFound):
        loaded.task("missing")


def test_loaded_spec_round_trips_without_files(project: Path) -> None:
    spec = load_project(project).task("ticket-triage")

    assert TaskSpec.model_validate(spec.model_dump()) == spec
    assert TaskSpec.model_validate_json(spec.model_dump_json()) == spec


def test_example_project_loads() -> None:
    spec = load_project(EXAMPLE_PROJECT).task("ticket-triage")

    assert spec.output["label"].values is not None
    assert len(spec.output["label"].values) == 77
    assert spec.policy.review_below == 0.47
    assert spec.model.provider == "local"
    assert spec.model.model == "minilm-tfidf-logreg"
    assert spec.hypothesis is not None
    assert {k.name for k in spec.hypothesis.kpis} >= {"auto_routed_share", "misroute_rate"}


def test_single_file_finds_its_project(project: Path) -> None:
    path = project / "tasks" / "ticket-triage.yaml"

    assert find_project_dir(path) == project
    spec = load_task_spec(path, project_dir=project)
    assert spec.name == "ticket-triage"


def test_typo_key_names_line_and_suggests(problems_of: ProblemsOf) -> None:
    text = VALID_SPEC.replace("    max_length: 1000", "    max_lenght: 1000")

    problem = only(problems_of(text), "input.text.max_lenght")

    assert problem.line == line_with(text, "max_lenght")
    assert "did you mean 'max_length'" in problem.message
    assert problem.file is not None
    assert problem.file.endswith("ticket-triage.yaml")


def test_wrong_type(problems_of: ProblemsOf) -> None:
    text = VALID_SPEC.replace("version: 1", 'version: "1"')

    problem = only(problems_of(text), "version")

    assert problem.line == 2
    assert "integer" in problem.message


def test_missing_key_points_at_parent(problems_of: ProblemsOf) -> None:
    text = VALID_SPEC.replace("  provider: local\n", "")

    problem = only(problems_of(text), "model.provider")

    assert problem.line == line_with(text, "model:")
    assert "missing" in problem.message


def test_bad_gate_string(problems_of: ProblemsOf) -> None:
    text = VALID_SPEC.replace('accuracy: ">= 0.9"', 'accuracy: "at least 0.9"')

    problem = only(problems_of(text), "evaluation.gates.accuracy")

    assert problem.line == line_with(text, "accuracy:")
    assert "'>= 0.92'" in problem.message


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ("path: data/train.csv", "path: data/nope.csv", "training.path"),
        ("path: data/dev.csv", "path: data/nope.jsonl", "evaluation.dataset.path"),
        ("data/categories.json", "data/nope.json", "output.label.values_from"),
    ],
)
def test_missing_file(problems_of: ProblemsOf, old: str, new: str, field: str) -> None:
    text = VALID_SPEC.replace(old, new)

    problem = only(problems_of(text), field)

    assert problem.line == line_with(text, new)
    assert "file not found" in problem.message


@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        ("../outside.csv", "'..' is not allowed"),
        ("data/../../outside.csv", "'..' is not allowed"),
        ("/etc/outside.csv", "not absolute"),
        ("C:/data/outside.csv", "not absolute"),
    ],
)
def test_path_escape_is_refused(problems_of: ProblemsOf, path: str, fragment: str) -> None:
    text = VALID_SPEC.replace("path: data/train.csv", f"path: {path}")

    problem = only(problems_of(text), "training.path")

    assert problem.line == line_with(text, path)
    assert fragment in problem.message


def test_symlink_out_of_project_is_refused(
    project: Path, tmp_path_factory: pytest.TempPathFactory, problems_of: ProblemsOf
) -> None:
    outside = tmp_path_factory.mktemp("outside") / "secret.csv"
    outside.write_text("text,category\n")
    os.symlink(outside, project / "data" / "link.csv")
    text = VALID_SPEC.replace("path: data/train.csv", "path: data/link.csv")

    problem = only(problems_of(text), "training.path")

    assert "outside the project folder" in problem.message


def test_unknown_column(problems_of: ProblemsOf) -> None:
    text = VALID_SPEC.replace("  label: category\n", "  label: categroy\n")

    problem = only(problems_of(text), "training.label")

    assert problem.line == line_with(text, "label: categroy")
    assert "'categroy'" in problem.message
    assert "category" in problem.message


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ('{"a": 1}', "JSON list"),
        ('["a", "a"]', "duplicate values: a"),
        ('["a", ""]', "non-empty string"),
        ("[1, 2", "not valid JSON"),
    ],
)
def test_bad_values_file(
    project: Path, problems_of: ProblemsOf, content: str, fragment: str
) -> None:
    (project / "data" / "categories.json").write_text(content)

    problem = only(problems_of(VALID_SPEC), "output.label.values_from")

    assert fragment in problem.message


def test_duplicate_task_name(project: Path) -> None:
    (project / "tasks" / "zz-copy.yaml").write_text(VALID_SPEC)

    with pytest.raises(SpecInvalid) as info:
        load_project(project)

    problem = only(info.value.problems, "name")
    assert problem.file == str(project / "tasks" / "zz-copy.yaml")
    assert problem.line == 1
    assert "ticket-triage.yaml" in problem.message


def test_yaml_syntax_error(problems_of: ProblemsOf) -> None:
    text = VALID_SPEC.replace("owner: support@example.com", "owner: [support@example.com")

    problem = only(problems_of(text), "(document)")

    assert problem.message.startswith("YAML syntax error")
    assert problem.line is not None
    assert problem.line >= line_with(text, "owner:")


def test_duplicate_yaml_key(problems_of: ProblemsOf) -> None:
    text = VALID_SPEC.replace("version: 1\n", "version: 1\nversion: 2\n")

    problem = only(problems_of(text), "version")

    assert problem.line == 3
    assert "given twice" in problem.message


@pytest.mark.parametrize(
    ("text", "fragment"),
    [("", "empty"), ("# only a comment\n", "empty"), ("- a\n- b\n", "not a list")],
)
def test_top_level_must_be_a_mapping(problems_of: ProblemsOf, text: str, fragment: str) -> None:
    problem = only(problems_of(text), "(document)")

    assert problem.line == 1
    assert fragment in problem.message


def test_many_errors_in_one_file_are_all_reported(problems_of: ProblemsOf) -> None:
    text = (
        VALID_SPEC.replace("version: 1", "version: 0")
        .replace("kind: classify", "kind: clasify")
        .replace("    max_length: 1000", "    max_length: 1000\n    colour: red")
        .replace("review_below: 0.5", "review_below: 1.5")
        .replace('macro_f1: ">= 0.8"', 'macro_f1: "0.8"')
        .replace("path: data/dev.csv", "path: data/nope.csv")
        .replace('target: ">= 0.85"', "target: high")
    )

    problems = problems_of(text)

    expected = {
        "version": "version: 0",
        "kind": "kind: clasify",
        "input.text.colour": "colour: red",
        "policy.review_below": "review_below",
        "evaluation.gates.macro_f1": "macro_f1",
        "evaluation.dataset.path": "data/nope.csv",
        "hypothesis.kpis[0].target": "target: high",
    }
    assert {p.field for p in problems} == set(expected)
    for field, needle in expected.items():
        assert only(problems, field).line == line_with(text, needle)
    assert [p.line for p in problems] == sorted(p.line or 0 for p in problems)


def test_errors_of_all_files_are_collected(project: Path) -> None:
    (project / "tasks" / "other.yaml").write_text("name: other\nversion: 1\n")
    broken = VALID_SPEC.replace("version: 1", "version: 0")
    (project / "tasks" / "ticket-triage.yaml").write_text(broken)

    with pytest.raises(SpecInvalid) as info:
        load_project(project)

    files = {Path(p.file or "").name for p in info.value.problems}
    assert files == {"other.yaml", "ticket-triage.yaml"}


def test_classify_output_contract(problems_of: ProblemsOf) -> None:
    text = VALID_SPEC.replace(
        "  confidence:\n    type: number",
        "  confidence:\n    type: string\n  reason:\n    type: string",
    ).replace("    minimum: 0\n    maximum: 1\n", "")

    problems = problems_of(text)

    reason_line = line_with(text, "reason:")
    assert only(problems, "output.confidence.type").line == reason_line - 1
    assert only(problems, "output.reason").line == reason_line


def test_mappings_must_name_declared_fields(problems_of: ProblemsOf) -> None:
    text = VALID_SPEC.replace("      label: category", "      labels: category")

    problem = only(problems_of(text), "evaluation.dataset.expected.labels")

    assert problem.line == line_with(text, "labels: category")
    assert "not a declared output field" in problem.message


def test_other_kinds_need_to_be_registered(project: Path) -> None:
    text = VALID_SPEC.replace("kind: classify", "kind: triage")
    path = project / "tasks" / "ticket-triage.yaml"
    path.write_text(text)

    with pytest.raises(SpecInvalid) as info:
        load_task_spec(path, project_dir=project)
    known = "answer, classify, decide, extract, generate"
    assert f"unknown task kind 'triage' (known: {known})" in str(info.value)

    spec = load_task_spec(path, project_dir=project, kinds={"classify", "triage"})
    assert spec.kind == "triage"


def test_project_file_problems(tmp_path: Path) -> None:
    (tmp_path / "shipyard.yaml").write_text("name: demo\ntasks_dir: specs\ncolor: blue\n")

    with pytest.raises(SpecInvalid) as info:
        load_project(tmp_path)

    problems = info.value.problems
    assert only(problems, "color").line == 3


def test_missing_tasks_folder(tmp_path: Path) -> None:
    (tmp_path / "shipyard.yaml").write_text("name: demo\ntasks_dir: specs\n")

    with pytest.raises(SpecInvalid) as info:
        load_project(tmp_path)

    problem = only(info.value.problems, "tasks_dir")
    assert problem.line == 2
    assert "folder not found" in problem.message


def test_missing_project_file(tmp_path: Path) -> None:
    with pytest.raises(SpecInvalid) as info:
        load_project(tmp_path)

    problem = only(info.value.problems, "(document)")
    assert problem.file == str(tmp_path / "shipyard.yaml")
    assert problem.message == "file not found"


@settings(max_examples=150, deadline=None)
@given(
    edits=st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=VALID_SPEC.count("\n")),
            st.sampled_from(["drop", "dup", "value", "indent", "text"]),
            st.text(max_size=12),
        ),
        max_size=4,
    )
)
def test_no_edit_crashes_the_loader(
    tmp_path_factory: pytest.TempPathFactory,
    edits: list[tuple[int, str, str]],
) -> None:
    lines = VALID_SPEC.splitlines()
    for position, action, junk in edits:
        index = min(position, len(lines) - 1)
        if action == "drop":
            del lines[index]
        elif action == "dup":
            lines.insert(index, lines[index])
        elif action == "value":
            key = lines[index].split(":")[0]
            lines[index] = f"{key}: {junk}"
        elif action == "indent":
            lines[index] = "  " + lines[index]
        else:
            lines.insert(index, junk)
        if not lines:
            break
    folder = tmp_path_factory.mktemp("fuzz")
    path = folder / "spec.yaml"
    path.write_text("\n".join(lines), encoding="utf-8", errors="surrogatepass")

    problems: list[FieldProblem] = []
    try:
        load_task_spec(path, project_dir=folder)
    except SpecInvalid as exc:
        problems = exc.problems or [FieldProblem("?", "no problems listed")]
    assert all(p.file == str(path) for p in problems)
