"""``shipyard audit``: verify the hash chain; sign, export and verify head checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy.exc import SQLAlchemyError

from shipyard.bootstrap import Container
from shipyard.cli.common import (
    EXIT_FAILED,
    ProjectOption,
    console,
    errors,
    fail,
    open_container,
    user_errors,
)
from shipyard.governance import checkpoints
from shipyard.governance.audit_export import check_lines
from shipyard.storage import migrate

audit_app = typer.Typer(help="The hash-chained audit trail.", no_args_is_help=True)


def _current_container(project: Path) -> Container:
    container = open_container(project, migrate=False)
    try:
        current = migrate.is_current(container.engine)
    except SQLAlchemyError:
        current = False
    if not current:
        raise fail("no current database here; run `shipyard db upgrade` first")
    return container


def _signing_key(container: Container) -> Ed25519PrivateKey | None:
    secret = container.settings.audit_signing_key
    if secret is None:
        return None
    with user_errors():
        return checkpoints.load_private_key(secret.get_secret_value())


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise fail(f"{path}: cannot read ({type(exc).__name__})") from None


@audit_app.command("checkpoint")
def audit_checkpoint(project: ProjectOption = Path(".")) -> None:
    """Sign the current chain head with SHIPYARD_AUDIT_SIGNING_KEY and store the checkpoint."""
    container = _current_container(project)
    key = _signing_key(container)
    if key is None:
        raise fail("set SHIPYARD_AUDIT_SIGNING_KEY (Ed25519 PEM or base64 raw) to sign checkpoints")
    with user_errors():
        cp = container.audit.checkpoint(key)
    console.print(f"checkpoint signed: seq={cp.seq} key={cp.key_id}")


@audit_app.command("export-checkpoints")
def audit_export_checkpoints(
    out: Annotated[Path, typer.Option("--out", help="JSON-lines file to write")],
    project: ProjectOption = Path("."),
) -> None:
    """Write the stored checkpoints, with the public key, as JSON lines (keep it elsewhere)."""
    container = _current_container(project)
    key = _signing_key(container)
    if key is None:
        raise fail("set SHIPYARD_AUDIT_SIGNING_KEY: the export carries its public key")
    items = container.audit.checkpoints()
    try:
        out.write_text(checkpoints.export_lines(items, key.public_key()), encoding="utf-8")
    except OSError as exc:
        raise fail(f"{out}: cannot write ({exc.strerror})") from None
    console.print(f"exported {len(items)} checkpoints to {out}")


@audit_app.command("verify")
def audit_verify(
    project: ProjectOption = Path("."),
    checkpoints_file: Annotated[
        Path | None,
        typer.Option("--checkpoints", help="Also verify an exported checkpoints file"),
    ] = None,
    public_key_file: Annotated[
        Path | None,
        typer.Option("--public-key", help="Trusted Ed25519 public key (base64 raw or PEM)"),
    ] = None,
) -> None:
    """Check the audit hash chain and checkpoints; exit 1 naming what was tampered with."""
    container = _current_container(project)
    trusted: Ed25519PublicKey | None = None
    if public_key_file is not None:
        with user_errors():
            trusted = checkpoints.load_public_key(_read(public_key_file))
    else:
        signing = _signing_key(container)
        trusted = signing.public_key() if signing else None
    exported: list[tuple[checkpoints.Checkpoint, Ed25519PublicKey]] = []
    if checkpoints_file is not None:
        with user_errors():
            exported = checkpoints.parse_lines(_read(checkpoints_file))

    with user_errors():
        result = container.audit.verify()
        problems: list[checkpoints.CheckpointProblem] = []
        if trusted is not None:
            problems += container.audit.verify_checkpoints(container.audit.checkpoints(), trusted)
        # A trusted key overrides the file's own: anyone can sign a forged file with a new key.
        for cp, file_key in exported:
            problems += container.audit.verify_checkpoints([cp], trusted or file_key)

    failed = False
    if result.ok:
        console.print(f"audit chain intact: {result.events} events, head {result.head_hash[:16]}")
    else:
        failed = True
        errors.print(
            f"audit chain BROKEN at event seq={result.first_bad_seq}"
            + (f" id={result.first_bad_id}" if result.first_bad_id else "")
            + f": {result.reason} ({result.events} events verified before it)",
            highlight=False,
            soft_wrap=True,
        )
    for problem in problems:
        failed = True
        errors.print(f"FAILED {problem}", highlight=False, soft_wrap=True)
    checked = (len(container.audit.checkpoints()) if trusted else 0) + len(exported)
    if checked and not problems:
        console.print(f"checkpoints verified: {checked}")
    if failed:
        raise typer.Exit(EXIT_FAILED)


@audit_app.command("export")
def audit_export_events(
    out: Annotated[Path, typer.Option("--out", help="JSON-lines file to write")],
    after_seq: Annotated[
        int, typer.Option("--after-seq", min=0, help="Only events after this seq (increments)")
    ] = 0,
    project: ProjectOption = Path("."),
) -> None:
    """Write the audit chain (every tenant's events, with their hashes) as JSON lines, for an
    archive or a SIEM; `shipyard audit verify-export` checks such a file on its own."""
    container = _current_container(project)
    try:
        with out.open("w", encoding="utf-8") as handle:
            count = container.audit.export(handle.write, after_seq)
    except OSError as exc:
        raise fail(f"{out}: cannot write ({exc.strerror})") from None
    console.print(f"exported {count} audit events to {out}")


@audit_app.command("verify-export")
def audit_verify_export(
    file: Annotated[Path, typer.Argument(help="A file from `shipyard audit export`")],
) -> None:
    """Check an exported audit file without the database: consecutive events, unbroken
    links, hashes that follow from the fields. Exit 1 naming the first bad line."""
    try:
        with file.open(encoding="utf-8") as handle, user_errors():
            result = check_lines(handle)
    except (OSError, UnicodeDecodeError) as exc:
        raise fail(f"{file}: cannot read ({type(exc).__name__})") from None
    if not result.ok:
        errors.print(
            f"audit export BROKEN at line {result.line}: {result.reason} "
            f"({result.events} events verified before it)",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(EXIT_FAILED)
    last = result.last_hash or ""
    console.print(
        f"audit export intact: {result.events} events from seq {result.first_seq}, "
        f"last hash {last[:16]}"
    )
