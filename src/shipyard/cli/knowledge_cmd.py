"""``shipyard collections``, ``ingest``, ``jobs`` and ``search``: the knowledge base from a
shell. The CLI acts as an admin of the tenant it names (default: the project's)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from shipyard.access.roles import Role
from shipyard.cli.common import (
    ProjectOption,
    cli_principal,
    console,
    errors,
    fail,
    open_container,
    user_errors,
)
from shipyard.jobs.setup import make_runner
from shipyard.services.ingestion import JobView, Upload

collections_app = typer.Typer(help="Create, list and delete knowledge collections.")
TenantOption = Annotated[str | None, typer.Option(help="Tenant slug (default: project's)")]
MAX_FILES = 10_000  # one command, one transaction: split larger corpora
# Files a folder ingest picks up; other files in the folder are skipped, not rejected.
SUPPORTED_EXTENSIONS = frozenset(
    {".pdf", ".docx", ".html", ".htm", ".md", ".markdown", ".txt", ".eml"}
)


def _groups(text: str) -> frozenset[str]:
    return frozenset(part.strip() for part in text.split(",") if part.strip())


@collections_app.command("create")
def create_collection(
    name: Annotated[str, typer.Argument(help="Collection name, e.g. handbook")],
    description: Annotated[str, typer.Option(help="What the collection holds")] = "",
    retention_days: Annotated[
        int | None,
        typer.Option(min=1, max=36_500, help="Purge documents older than this many days"),
    ] = None,
    tenant: TenantOption = None,
    project: ProjectOption = Path("."),
) -> None:
    """Create a collection."""
    container = open_container(project)
    with user_errors():
        found = container.knowledge.create_collection(
            cli_principal(container, tenant), name, description, retention_days
        )
    console.print(f"collection {escape(found.name)} created ({found.id})")


@collections_app.command("list")
def list_collections(tenant: TenantOption = None, project: ProjectOption = Path(".")) -> None:
    """List collections with their documents by status."""
    container = open_container(project)
    with user_errors():
        views = container.knowledge.collections(cli_principal(container, tenant))
    table = Table("name", "indexed", "pending", "rejected", "created")
    for view in views:
        table.add_row(
            escape(view.collection.name),
            str(view.counts.get("indexed", 0)),
            str(view.counts.get("pending", 0)),
            str(view.counts.get("rejected", 0)),
            f"{view.collection.created_at:%Y-%m-%d %H:%M}",
        )
    console.print(table)


@collections_app.command("delete")
def delete_collection(
    name: str,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation")] = False,
    tenant: TenantOption = None,
    project: ProjectOption = Path("."),
) -> None:
    """Delete a collection with every document, chunk and vector."""
    if not yes and not typer.confirm(f"delete collection {name} and all its documents?"):
        raise typer.Exit(1)
    container = open_container(project)
    with user_errors():
        removed = container.knowledge.delete_collection(cli_principal(container, tenant), name)
    console.print(f"collection {escape(name)} deleted with {removed} documents")


def _files(paths: list[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(
                sorted(
                    p
                    for p in path.rglob("*")
                    if p.is_file() and p.suffix.lower() in SUPPORTED_EXTENSIONS
                )
            )
        elif path.is_file():
            found.append(path)
        else:
            raise fail(f"{path}: no such file or folder")
    if not found:
        raise fail("no supported files found (" + ", ".join(sorted(SUPPORTED_EXTENSIONS)) + ")")
    if len(found) > MAX_FILES:
        raise fail(f"{len(found)} files; ingest at most {MAX_FILES} at once")
    return found


def _records(path: Path, groups: frozenset[str]) -> list[Upload]:
    """A JSONL file of document records: source, text, and optional title, groups, metadata."""
    uploads = []
    with path.open(encoding="utf-8-sig") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                raise fail(f"{path}:{number}: not valid JSON") from None
            if (
                not isinstance(record, dict)
                or not isinstance(record.get("source"), str)
                or not isinstance(record.get("text"), str)
            ):
                raise fail(f"{path}:{number}: a record needs string 'source' and 'text'")
            own = record.get("groups") or []
            if not isinstance(own, list) or not all(isinstance(g, str) for g in own):
                raise fail(f"{path}:{number}: 'groups' must be a list of strings")
            metadata = record.get("metadata") or {}
            if not isinstance(metadata, dict):
                raise fail(f"{path}:{number}: 'metadata' must be an object")
            title = record.get("title")
            uploads.append(
                Upload(
                    source=record["source"],
                    content=record["text"].encode(),
                    media_type="text/plain",
                    title=title if isinstance(title, str) else None,
                    groups=frozenset(own) or groups,
                    metadata=metadata,
                )
            )
    return uploads


def _uploads(paths: list[Path], groups: frozenset[str], max_bytes: int) -> list[Upload]:
    uploads: list[Upload] = []
    files = _files(paths)
    bases = {path: path if path.is_dir() else path.parent for path in paths}
    for file in files:
        if file.suffix.lower() == ".jsonl":
            uploads.extend(_records(file, groups))
            continue
        base = next((b for p, b in bases.items() if file == p or p in file.parents), file.parent)
        if file.stat().st_size > max_bytes:
            # Not even read: the limit is known before the bytes are.
            errors.print(f"{escape(str(file))}: skipped, larger than {max_bytes} bytes")
            continue
        uploads.append(
            Upload(
                source=file.relative_to(base).as_posix(),
                content=file.read_bytes(),
                groups=groups,
            )
        )
    return uploads


def ingest(
    collection: Annotated[str, typer.Argument(help="Collection to add the documents to")],
    paths: Annotated[
        list[Path],
        typer.Argument(help="Files or folders (searched recursively); .jsonl = document records"),
    ],
    groups: Annotated[
        str, typer.Option(help="Access groups, comma-separated (default: everyone)")
    ] = "",
    create: Annotated[bool, typer.Option(help="Create the collection if it is missing")] = False,
    wait: Annotated[
        bool, typer.Option(help="With Celery: wait until the workers have indexed everything")
    ] = False,
    tenant: TenantOption = None,
    project: ProjectOption = Path("."),
) -> None:
    """Add or replace documents (PDF, DOCX, HTML, Markdown, TXT, EML, or JSONL records).

    A file's path relative to the folder given is its source name: ingesting the same path
    again with changed content replaces the document; identical content is skipped. A .jsonl
    file holds one document per line: {"source", "text", "title"?, "groups"?, "metadata"?}."""
    container = open_container(project)
    uploads = _uploads(paths, _groups(groups), container.settings.max_document_bytes)
    if not uploads:
        raise fail("nothing to ingest")
    principal = cli_principal(container, tenant)
    celery = container.settings.jobs == "celery"
    if celery:
        make_runner(container)  # dispatches to the broker on submit
    with user_errors():
        if create and not any(
            view.collection.name == collection
            for view in container.knowledge.collections(principal)
        ):
            container.knowledge.create_collection(principal, collection)
        view, results = container.ingestion.submit(principal, collection, uploads)
    for result in results:
        if result.status not in ("queued", "unchanged"):
            errors.print(
                f"{escape(result.source)}: {result.status}"
                + (f" ({escape(result.reason)})" if result.reason else ""),
                highlight=False,
            )
    queued = [r for r in results if r.status == "queued" and r.document_id]
    if celery and not wait:
        console.print(f"job {view.job.id}: {len(queued)} documents queued for the workers")
        return
    with Progress(
        TextColumn("indexing"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        bar = progress.add_task("indexing", total=len(queued))
        if celery:
            while True:
                current = container.ingestion.job(principal, view.job.id)
                progress.update(bar, completed=current.processed)
                if current.status == "done":
                    break
                time.sleep(1)
        else:
            # In-process: this command is the worker. Whatever it does not finish stays
            # pending and is resumed by the next `shipyard serve` or ingest.
            for result in queued:
                assert result.document_id is not None
                container.ingestion.process(principal.tenant_id, result.document_id)
                progress.advance(bar)
    final = container.ingestion.job(principal, view.job.id)
    _print_job(final)
    if final.counts.get("rejected"):
        for document in container.knowledge.documents(
            principal, collection, status="rejected", limit=200
        ):
            if document.job_id == view.job.id:
                errors.print(
                    f"rejected {escape(document.source)}: {document.reason_code}: "
                    f"{escape(document.reason or '')}",
                    highlight=False,
                )


def _print_job(view: JobView) -> None:
    counts = ", ".join(f"{count} {status}" for status, count in sorted(view.counts.items()))
    outcomes = view.job.detail.get("outcomes", {})
    skipped = ", ".join(
        f"{count} {status}" for status, count in sorted(outcomes.items()) if status != "queued"
    )
    console.print(
        f"job {view.job.id}: {view.status}; {counts or 'nothing to index'}"
        + (f"; at submission: {skipped}" if skipped else "")
    )


def jobs(
    job_id: Annotated[str | None, typer.Argument(help="One job's id")] = None,
    limit: Annotated[int, typer.Option(help="How many recent jobs")] = 20,
    tenant: TenantOption = None,
    project: ProjectOption = Path("."),
) -> None:
    """Progress of ingestion jobs (newest first), or one job."""
    container = open_container(project)
    principal = cli_principal(container, tenant)
    with user_errors():
        views = (
            [container.ingestion.job(principal, job_id)]
            if job_id
            else container.ingestion.jobs(principal, limit)
        )
    table = Table("id", "type", "status", "progress", "indexed", "rejected", "created", "by")
    for view in views:
        table.add_row(
            view.job.id,
            view.job.type,
            view.status,
            f"{view.processed}/{view.job.total}",
            str(view.counts.get("indexed", 0)),
            str(view.counts.get("rejected", 0)),
            f"{view.job.created_at:%Y-%m-%d %H:%M:%S}",
            escape(view.job.created_by),
        )
    console.print(table)


def search(
    collection: Annotated[str, typer.Argument(help="Collection to search")],
    query: Annotated[str, typer.Argument(help="What to look for")],
    k: Annotated[int, typer.Option("--k", "-k", help="Results")] = 5,
    mode: Annotated[str, typer.Option(help="hybrid, keyword or dense")] = "hybrid",
    groups: Annotated[str, typer.Option(help="Search as a caller holding these groups")] = "",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
    tenant: TenantOption = None,
    project: ProjectOption = Path("."),
) -> None:
    """Search a collection as a caller with the given access groups."""
    container = open_container(project)
    principal = cli_principal(container, tenant, _groups(groups), roles=frozenset({Role.CALLER}))
    with user_errors():
        passages = container.knowledge.search(principal, [collection], query, k=k, mode=mode)
    if as_json:
        console.print_json(
            json.dumps(
                [
                    {
                        "document_id": p.hit.document_id,
                        "source": p.source,
                        "title": p.title,
                        "chunk": p.hit.chunk_index,
                        "score": p.hit.score,
                        "scores": p.hit.scores,
                        "text": p.hit.text,
                    }
                    for p in passages
                ]
            )
        )
        return
    for rank, passage in enumerate(passages, start=1):
        flag = " [red](flagged: reads like an instruction)[/red]" if passage.flagged else ""
        console.print(
            f"[bold]{rank}. {escape(passage.title)}[/bold] "
            f"({escape(passage.source)} #{passage.hit.chunk_index}, "
            f"score {passage.hit.score:.4f}){flag}"
        )
        console.print(escape(passage.hit.text[:400]), highlight=False)
