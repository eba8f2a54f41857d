"""An upload of the same bytes as a document being deleted keeps its stored file, whichever
way the two interleave (the delete sets the file aside and looks again; the upload writes it
again after its commit), and a file left aside by a crashed delete is found again."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from shipyard.access.principal import Principal
from shipyard.bootstrap import Container
from shipyard.knowledge.blobs import BlobStore, sha256_hex
from shipyard.services.ingestion import Upload
from tests.conftest import new_admin

TEXT = b"# Lockers\n\nLockers are emptied on the last Friday of every month."


@pytest.fixture(scope="module")
def container(own_container: Container) -> Container:
    return own_container


def _submit(
    container: Container, principal: Principal, source: str, collection: str = "handbook"
) -> str:
    _job, accepted = container.ingestion.submit(
        principal, collection, [Upload(source, TEXT, "text/markdown")]
    )
    assert accepted[0].status == "queued", accepted
    assert accepted[0].document_id is not None
    return accepted[0].document_id


@pytest.mark.parametrize("upload_commits", ["before the file is set aside", "while it is aside"])
def test_a_concurrent_upload_of_the_same_bytes_keeps_its_file(
    container: Container, monkeypatch: pytest.MonkeyPatch, upload_commits: str
) -> None:
    principal = new_admin(container)
    container.knowledge.create_collection(principal, "handbook")
    container.knowledge.create_collection(principal, "archive")  # same tenant: same files
    old = _submit(container, principal, "old.md")
    assert container.ingestion.process(principal.tenant_id, old) == "indexed"
    blobs = container.blobs
    real_set_aside = blobs.set_aside
    new: list[str] = []

    def upload_meanwhile() -> None:
        if not new:  # once: the upload's own commit path must not recurse into this
            new.append(_submit(container, principal, "new.md", "archive"))

    def set_aside(tenant_id: str, digest: str) -> Path | None:
        if upload_commits.startswith("before"):
            upload_meanwhile()
        moved = real_set_aside(tenant_id, digest)
        if upload_commits.startswith("while"):
            upload_meanwhile()
        return moved

    monkeypatch.setattr(blobs, "set_aside", set_aside)
    container.knowledge.delete_document(principal, "handbook", old)
    monkeypatch.undo()
    assert new, "the upload ran inside the delete"
    assert blobs.exists(principal.tenant_id, sha256_hex(TEXT))
    assert container.ingestion.process(principal.tenant_id, new[0]) == "indexed"
    folder = Path(container.settings.state_dir) / "blobs" / principal.tenant_id
    assert not list(folder.rglob(".*.aside.*"))  # nothing left set aside


def test_a_delete_between_an_uploads_write_and_its_commit_leaves_the_file(
    container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    principal = new_admin(container)
    container.knowledge.create_collection(principal, "handbook")
    container.knowledge.create_collection(principal, "archive")  # same tenant: same files
    old = _submit(container, principal, "old.md")
    assert container.ingestion.process(principal.tenant_id, old) == "indexed"
    blobs = container.blobs
    real_put = blobs.put
    deleted: list[str] = []

    def put(tenant_id: str, content: bytes) -> str:
        digest = real_put(tenant_id, content)  # the file is already there: nothing written
        if not deleted:  # the whole delete runs before the upload's rows commit
            deleted.append(old)
            container.knowledge.delete_document(principal, "handbook", old)
        return digest

    monkeypatch.setattr(blobs, "put", put)
    new = _submit(container, principal, "new.md", "archive")
    monkeypatch.undo()
    assert deleted == [old]
    assert container.ingestion.process(principal.tenant_id, new) == "indexed"


def test_an_unreferenced_file_is_still_deleted(container: Container) -> None:
    principal = new_admin(container)
    container.knowledge.create_collection(principal, "handbook")
    only = _submit(container, principal, "only.md")
    assert container.ingestion.process(principal.tenant_id, only) == "indexed"
    container.knowledge.delete_document(principal, "handbook", only)
    assert not container.blobs.exists(principal.tenant_id, sha256_hex(TEXT))
    folder = Path(container.settings.state_dir) / "blobs" / principal.tenant_id
    assert [path for path in folder.rglob("*") if path.is_file()] == []


def test_a_file_left_aside_by_a_crashed_delete_is_found_again(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    tenant = str(uuid.uuid4())
    digest = store.put(tenant, TEXT)
    assert store.set_aside(tenant, digest) is not None  # ...and the deleter died here
    assert not store.exists(tenant, digest)
    assert store.get(tenant, digest) == TEXT
    assert store.exists(tenant, digest)
    # A live deleter whose set-aside file a reader took back restores without failing.
    aside = store.set_aside(tenant, digest)
    assert aside is not None
    assert store.get(tenant, digest) == TEXT
    store.restore(tenant, digest, aside)
    assert store.exists(tenant, digest)
    assert store.set_aside(tenant, "0" * 64) is None  # nothing there: nothing to set aside
    with pytest.raises(FileNotFoundError):
        store.get(tenant, "0" * 64)
