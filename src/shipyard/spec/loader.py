"""Load task specs and projects from YAML, reporting every problem with file, line and field.

Loading never stops at the first mistake: all files are read, every validation error and every
missing or unusable referenced file is collected, and one :class:`SpecInvalid` carries them
all, so ``shipyard spec validate`` in CI shows the complete list in one run. Referenced data
files must live inside the project folder, which keeps a project relocatable and stops a spec
from reading arbitrary files on the server.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from shipyard.errors import FieldProblem, NotFound, SpecInvalid
from shipyard.spec.constraints import Loc, relative_path_problem
from shipyard.spec.locate import (
    DOCUMENT,
    ParsedYaml,
    duplicate_keys,
    format_loc,
    line_of,
    parse_yaml,
    problems_from,
    yaml_error_line,
)
from shipyard.spec.model import DEFAULT_KINDS, FieldSpec, ProjectConfig, TaskSpec

PROJECT_FILE = "shipyard.yaml"
TASK_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class Project:
    """A loaded project: its config, its valid task specs and the file each came from."""

    root: Path
    config: ProjectConfig
    tasks: Mapping[str, TaskSpec]
    sources: Mapping[str, Path]

    def task(self, name: str) -> TaskSpec:
        """The spec called ``name``; :class:`NotFound` when the project has no such task."""
        try:
            return self.tasks[name]
        except KeyError:
            raise NotFound(f"no task named {name!r} in project {self.config.name!r}") from None

    def path(self, relative: str) -> Path:
        """A path written in a spec (training data, datasets), resolved against the project."""
        return self.root / relative


def find_project_dir(path: Path) -> Path | None:
    """The nearest folder at or above ``path`` that holds ``shipyard.yaml``."""
    start = path if path.is_dir() else path.parent
    for folder in (start, *start.resolve().parents):
        if (folder / PROJECT_FILE).is_file():
            return folder
    return None


def load_task_spec(
    path: Path, *, project_dir: Path, kinds: Collection[str] | None = None
) -> TaskSpec:
    """Load one task spec; raise :class:`SpecInvalid` listing every problem found."""
    spec, problems, _ = _load_task(path, project_dir, kinds)
    if spec is None:
        raise SpecInvalid(f"{path}: {len(problems)} problem(s)", problems=problems)
    return spec


def load_project(project_dir: Path, *, kinds: Collection[str] | None = None) -> Project:
    """Load ``shipyard.yaml`` and every task spec of the project, all problems at once."""
    config_path = project_dir / PROJECT_FILE
    parsed, problems = _read_document(config_path)
    config: ProjectConfig | None = None
    if parsed is not None:
        try:
            config = ProjectConfig.model_validate(parsed.data)
        except ValidationError as exc:
            problems += problems_from(exc, ProjectConfig, parsed.root, str(config_path))
    tasks_dir = project_dir / (config.tasks_dir if config else "tasks")
    if config is not None and parsed is not None:
        missing = _folder_problem(project_dir, tasks_dir)
        if missing:
            line = line_of(parsed.root, ("tasks_dir",))
            problems.append(FieldProblem("tasks_dir", missing, str(config_path), line))

    tasks: dict[str, TaskSpec] = {}
    sources: dict[str, Path] = {}
    for path in _task_files(tasks_dir):
        spec, file_problems, task_yaml = _load_task(path, project_dir, kinds)
        problems += file_problems
        name = task_yaml.data.get("name") if task_yaml is not None else None
        if not isinstance(name, str):
            continue
        if name in sources:
            line = line_of(task_yaml.root if task_yaml else None, ("name",))
            message = f"task name {name!r} is already used by {sources[name]}"
            problems.append(FieldProblem("name", message, str(path), line))
            continue
        sources[name] = path
        if spec is not None:
            tasks[name] = spec

    if problems or config is None:
        raise SpecInvalid(f"{project_dir}: {len(problems)} problem(s)", problems=problems)
    return Project(root=project_dir, config=config, tasks=tasks, sources=sources)


def _task_files(tasks_dir: Path) -> list[Path]:
    if not tasks_dir.is_dir():
        return []
    return sorted(p for p in tasks_dir.iterdir() if p.suffix in TASK_SUFFIXES and p.is_file())


def _folder_problem(project_dir: Path, folder: Path) -> str | None:
    if not folder.resolve().is_relative_to(project_dir.resolve()):
        return "resolves outside the project folder"
    if not folder.is_dir():
        return f"folder not found: {folder}"
    return None


def _read_document(path: Path) -> tuple[ParsedYaml | None, list[FieldProblem]]:
    """Parse a YAML file whose top level must be a mapping; problems instead of exceptions."""
    file = str(path)

    def fail(message: str, line: int | None = None) -> tuple[None, list[FieldProblem]]:
        return None, [FieldProblem(DOCUMENT, message, file, line)]

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return fail("file not found")
    except (OSError, UnicodeDecodeError) as exc:
        return fail(f"cannot read the file: {exc}")
    try:
        parsed = parse_yaml(text)
    except yaml.MarkedYAMLError as exc:
        detail = " ".join(str(part) for part in (exc.context, exc.problem) if part)
        return fail(f"YAML syntax error: {detail}", yaml_error_line(exc))
    except yaml.YAMLError as exc:
        return fail(f"YAML syntax error: {exc}", yaml_error_line(exc))
    if parsed.data is None:
        return fail("the file is empty", 1)
    if not isinstance(parsed.data, dict):
        kind = type(parsed.data).__name__
        return fail(f"the top level must be a mapping of keys to values, not a {kind}", 1)
    problems = [
        FieldProblem(format_loc(loc), f"key '{key}' is given twice", file, line)
        for loc, line, key in duplicate_keys(parsed.root)
    ]
    return parsed, problems


def _load_task(
    path: Path, project_dir: Path, kinds: Collection[str] | None
) -> tuple[TaskSpec | None, list[FieldProblem], ParsedYaml | None]:
    parsed, problems = _read_document(path)
    if parsed is None:
        return None, problems, None
    spec: TaskSpec | None = None
    try:
        context = {"kinds": kinds if kinds is not None else DEFAULT_KINDS}
        spec = TaskSpec.model_validate(parsed.data, context=context)
    except ValidationError as exc:
        problems += problems_from(exc, TaskSpec, parsed.root, str(path))
    checker = _FileChecker(project_dir, parsed, str(path))
    problems += checker.check(parsed.data)
    if spec is None or problems:
        return None, sorted(problems, key=lambda p: p.line or 0), parsed
    return _resolve_enums(spec, checker.enum_values), [], parsed


def _resolve_enums(spec: TaskSpec, resolved: Mapping[Loc, list[str]]) -> TaskSpec:
    """Replace ``values_from`` by the values read, so a loaded spec is self-contained."""
    update: dict[str, dict[str, FieldSpec]] = {}
    for section in ("input", "output"):
        fields: dict[str, FieldSpec] = dict(getattr(spec, section))
        for name, field in fields.items():
            values = resolved.get((section, name, "values_from"))
            if field.values_from is not None and values is not None:
                fields[name] = field.model_copy(update={"values": values, "values_from": None})
        update[section] = fields
    return spec.model_copy(update=update)


def _get(data: Any, *keys: str) -> Any:
    for key in keys:
        data = data.get(key) if isinstance(data, dict) else None
    return data


class _FileChecker:
    """Checks the files a raw spec refers to: inside the project, present and readable."""

    def __init__(self, project_dir: Path, parsed: ParsedYaml, file: str) -> None:
        self.project_dir = project_dir
        self.parsed = parsed
        self.file = file
        self.enum_values: dict[Loc, list[str]] = {}
        self.problems: list[FieldProblem] = []

    def check(self, data: Any) -> list[FieldProblem]:
        for section in ("input", "output"):
            fields = _get(data, section)
            for name, field in fields.items() if isinstance(fields, dict) else ():
                self._enum_file((section, name, "values_from"), _get(field, "values_from"))
        training = _get(data, "training")
        self._data_file(("training",), training, {"input": "input", "label": None})
        dataset = _get(data, "evaluation", "dataset")
        self._data_file(
            ("evaluation", "dataset"), dataset, {"input": "input", "expected": "expected"}
        )
        return self.problems

    def _report(self, loc: Loc, message: str) -> None:
        line = line_of(self.parsed.root, loc)
        self.problems.append(FieldProblem(format_loc(loc), message, self.file, line))

    def _existing(self, loc: Loc, value: Any, suffixes: tuple[str, ...]) -> Path | None:
        """The file ``value`` names, or None (reporting why) when it cannot be used."""
        if not isinstance(value, str) or relative_path_problem(value) is not None:
            return None  # the model reports malformed paths
        if not value.lower().endswith(suffixes):
            return None
        root = self.project_dir.resolve()
        target = (root / value).resolve()
        if not target.is_relative_to(root):
            self._report(loc, f"{value} resolves outside the project folder")
            return None
        if not target.is_file():
            self._report(loc, f"file not found: {value} (relative to {self.project_dir})")
            return None
        return target

    def _enum_file(self, loc: Loc, value: Any) -> None:
        path = self._existing(loc, value, (".json",))
        if path is None:
            return
        try:
            self.enum_values[loc] = _read_enum_values(path)
        except ValueError as exc:
            self._report(loc, f"{value}: {exc}")

    def _data_file(self, loc: Loc, section: Any, column_keys: Mapping[str, str | None]) -> None:
        path = self._existing((*loc, "path"), _get(section, "path"), (".csv", ".jsonl"))
        if path is None:
            return
        try:
            columns = _read_columns(path)
        except (OSError, ValueError, csv.Error) as exc:
            self._report((*loc, "path"), f"cannot read {path.name}: {exc}")
            return
        for where, column in _wanted_columns(section, column_keys):
            if column not in columns:
                message = f"column {column!r} is not in {path.name} (columns: {', '.join(columns)})"
                self._report((*loc, *where), message)


def _wanted_columns(
    section: Any, column_keys: Mapping[str, str | None]
) -> Iterator[tuple[Loc, str]]:
    """(location, column) pairs: mapping keys hold columns as values, plain keys directly."""
    for key, kind in column_keys.items():
        value = _get(section, key)
        if kind is None and isinstance(value, str):
            yield (key,), value
        elif kind is not None and isinstance(value, dict):
            for field, column in value.items():
                if isinstance(column, str):
                    yield (key, str(field)), column


def _read_columns(path: Path) -> list[str]:
    """Header of a CSV file, or the keys of the first record of a JSONL file."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        if path.suffix.lower() == ".csv":
            header = next(csv.reader(handle), None)
            if not header:
                raise ValueError("the file is empty")
            return header
        for line in handle:
            if line.strip():
                record = json.loads(line)
                if not isinstance(record, dict):
                    raise ValueError("each line must hold a JSON object")
                return [str(key) for key in record]
    raise ValueError("the file has no records")


def _read_enum_values(path: Path) -> list[str]:
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read the file: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON (line {exc.lineno}): {exc.msg}") from exc
    if not isinstance(values, list) or not values:
        raise ValueError("must hold a non-empty JSON list of strings")
    if not all(isinstance(v, str) and v for v in values):
        raise ValueError("every value must be a non-empty string")
    duplicates = sorted(v for v, n in Counter(values).items() if n > 1)
    if duplicates:
        raise ValueError(f"duplicate values: {', '.join(duplicates)}")
    return values
