"""`shipyard collections`, `ingest`, `jobs` and `search` on a real project folder."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.conftest import invoke


def write_docs(folder: Path) -> Path:
    docs = folder / "docs"
    (docs / "hr").mkdir(parents=True)
    (docs / "hr" / "vacation.md").write_text(
        "# Vacation\n\nEvery employee receives 27 vacation days per calendar year."
    )
    (docs / "it.txt").write_text("Report a lost laptop to the service desk within one hour.")
    (docs / "page.html").write_text(
        "<html><head><title>Canteen</title></head><body><h1>Menu</h1>"
        "<p>The canteen serves soup every Monday.</p><script>alert(1)</script></body></html>"
    )
    (docs / "fake.pdf").write_text("plain text pretending to be a PDF")
    (docs / "notes.bin").write_bytes(b"\x00\x01")  # unsupported extension: skipped
    return docs


def test_collections_ingest_jobs_and_search(project: Path, tmp_path: Path) -> None:
    docs = write_docs(tmp_path)
    code, output = invoke(project, "collections", "create", "handbook")
    assert code == 0, output
    code, output = invoke(project, "collections", "create", "handbook")
    assert code == 2
    assert "already exists" in output

    code, output = invoke(project, "ingest", "handbook", str(docs), "--groups", "staff")
    assert code == 0, output
    assert "3 indexed" in output
    assert "1 rejected" in output
    assert "fake.pdf" in output
    assert "type_mismatch" in output

    code, output = invoke(project, "ingest", "handbook", str(docs), "--groups", "staff")
    assert code == 0, output
    assert "nothing to index" in output
    assert "4 unchanged" in output

    code, output = invoke(project, "jobs")
    assert code == 0, output
    assert "done" in output

    code, output = invoke(
        project, "search", "handbook", "vacation days", "--groups", "staff", "--json"
    )
    assert code == 0, output
    hits = json.loads(output)
    assert hits[0]["source"] == "hr/vacation.md"
    # Without the group the documents do not exist for the searcher.
    code, output = invoke(project, "search", "handbook", "vacation days", "--json")
    assert code == 0, output
    assert json.loads(output) == []

    # Ingesting again with other groups re-groups the documents without re-indexing.
    code, output = invoke(project, "ingest", "handbook", str(docs / "it.txt"), "--groups", "it")
    assert code == 0, output
    assert "regrouped" in output
    code, output = invoke(project, "search", "handbook", "lost laptop", "--groups", "it", "--json")
    assert json.loads(output)[0]["source"] == "it.txt"
    code, output = invoke(
        project, "search", "handbook", "lost laptop", "--groups", "staff", "--json"
    )
    assert all(hit["source"] != "it.txt" for hit in json.loads(output))

    code, output = invoke(project, "collections", "list")
    assert code == 0, output
    assert "handbook" in output


def test_jsonl_records_and_bad_input(project: Path, tmp_path: Path) -> None:
    records = tmp_path / "records.jsonl"
    records.write_text(
        json.dumps({"source": "a", "text": "The cafeteria opens at seven.", "groups": ["x"]})
        + "\n"
        + json.dumps({"source": "b", "text": "Parking is free for cyclists.", "title": "Bikes"})
        + "\n"
    )
    code, output = invoke(project, "ingest", "records", str(records), "--create")
    assert code == 0, output
    assert "2 indexed" in output

    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"source": "a"}\n')
    code, output = invoke(project, "ingest", "records", str(broken))
    assert code == 2
    assert "broken.jsonl:1" in output

    code, output = invoke(project, "ingest", "missing-collection", str(records))
    assert code == 2
    assert "no collection" in output
    code, output = invoke(project, "ingest", "records", str(tmp_path / "nope"))
    assert code == 2
    code, output = invoke(project, "search", "records", "x", "--mode", "fuzzy")
    assert code == 2
    assert "mode" in output
