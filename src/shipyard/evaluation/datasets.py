"""Read labelled rows from CSV or JSONL, mapped to a task's fields by the spec.

Bad rows are reported with their line number, never silently skipped.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from shipyard.errors import DataInvalid, FieldProblem
from shipyard.kinds.base import Example

MAX_REPORTED_PROBLEMS = 20


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _csv_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    # utf-8-sig: spreadsheet exports start with a byte-order mark.
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        for row in reader:
            yield reader.line_num, dict(row)


def _jsonl_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open(encoding="utf-8-sig") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataInvalid(
                    f"{path.name}: not valid JSON Lines",
                    [FieldProblem("row", exc.msg, file=str(path), line=number)],
                ) from None
            if not isinstance(row, dict):
                raise DataInvalid(
                    f"{path.name}: every line must be a JSON object",
                    [FieldProblem("row", "not an object", file=str(path), line=number)],
                )
            yield number, row


def read_examples(
    path: Path,
    inputs: Mapping[str, str],
    expected: Mapping[str, str],
    *,
    empty_expected: bool = False,
) -> list[Example]:
    """Rows of ``path`` as examples; ``inputs``/``expected`` map task fields to columns.

    With ``empty_expected`` an expected value may be empty (e.g. an unanswerable question has
    no gold passage); it must still be present."""
    if not path.is_file():
        raise DataInvalid(f"data file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        rows = _csv_rows(path)
    elif suffix in (".jsonl", ".ndjson"):
        rows = _jsonl_rows(path)
    else:
        raise DataInvalid(f"{path.name}: unsupported data format {suffix!r}; use .csv or .jsonl")
    examples: list[Example] = []
    problems: list[FieldProblem] = []
    try:
        for line, row in rows:
            missing = [column for column in inputs.values() if row.get(column) in (None, "")]
            missing += [
                column
                for column in expected.values()
                if row.get(column) is None or (row.get(column) == "" and not empty_expected)
            ]
            if missing:
                problems.extend(
                    FieldProblem(column, "missing or empty", file=str(path), line=line)
                    for column in missing
                )
                continue
            examples.append(
                Example(
                    line=line,
                    inputs={field: row[column] for field, column in inputs.items()},
                    expected={field: row[column] for field, column in expected.items()},
                )
            )
    except UnicodeDecodeError:
        raise DataInvalid(f"{path.name}: not UTF-8 text") from None
    except csv.Error as exc:
        raise DataInvalid(f"{path.name}: malformed CSV: {exc}") from None
    if problems:
        raise DataInvalid(
            f"{path.name}: {len(problems)} bad row value(s)", problems[:MAX_REPORTED_PROBLEMS]
        )
    if not examples:
        raise DataInvalid(f"{path.name}: no rows")
    return examples
