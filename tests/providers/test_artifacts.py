"""Content-addressed model storage on a real file system."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shipyard.errors import InvalidInput, ModelNotReady
from shipyard.providers.local import ArtifactStore
from shipyard.providers.local.embedder import file_sha256

METADATA = {"kind": "text-classifier", "labels": ["a", "b"], "oof_accuracy": 0.93}


def make_model_dir(path: Path, weights: bytes = b"\x00\x01weights") -> Path:
    (path / "nested").mkdir(parents=True)
    (path / "classifier.json").write_text('{"labels": ["a", "b"]}', encoding="utf-8")
    (path / "arrays.npz").write_bytes(weights)
    (path / "nested" / "vocab.txt").write_text("card\nrate\n", encoding="utf-8")
    return path


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore(tmp_path / "store")


@pytest.fixture
def digest(store: ArtifactStore, tmp_path: Path) -> str:
    return store.put(make_model_dir(tmp_path / "src"), METADATA)


def test_put_stores_a_verified_copy_with_manifest(
    store: ArtifactStore, digest: str, tmp_path: Path
) -> None:
    assert len(digest) == 64
    assert int(digest, 16) >= 0
    folder = store.path(digest)
    assert folder == store.root / digest
    assert (folder / "nested" / "vocab.txt").read_text(encoding="utf-8") == "card\nrate\n"
    manifest = store.manifest(digest)
    assert manifest["metadata"] == METADATA
    assert [f["path"] for f in manifest["files"]] == [
        "arrays.npz",
        "classifier.json",
        "nested/vocab.txt",
    ]
    assert (tmp_path / "src" / "arrays.npz").exists()  # the source is left alone
    assert store.digests() == [digest]
    assert [p.name for p in store.root.iterdir()] == [digest]  # no staging folder left


def test_same_content_same_digest_stored_once(
    store: ArtifactStore, digest: str, tmp_path: Path
) -> None:
    again = store.put(make_model_dir(tmp_path / "copy"), METADATA)
    assert again == digest
    assert store.digests() == [digest]


def test_content_or_metadata_change_the_digest(
    store: ArtifactStore, digest: str, tmp_path: Path
) -> None:
    other_weights = store.put(make_model_dir(tmp_path / "w", b"\x00\x02weights"), METADATA)
    other_metadata = store.put(make_model_dir(tmp_path / "m"), {**METADATA, "oof_accuracy": 0.5})
    assert len({digest, other_weights, other_metadata}) == 3
    assert sorted(store.digests()) == sorted([digest, other_weights, other_metadata])


@pytest.mark.parametrize(
    "tamper",
    [
        lambda folder: (folder / "arrays.npz").write_bytes(b"\x00\x01weightS"),
        lambda folder: (folder / "nested" / "vocab.txt").unlink(),
        lambda folder: (folder / "extra.py").write_text("import os", encoding="utf-8"),
        lambda folder: (folder / "manifest.json").write_text(
            (folder / "manifest.json").read_text().replace("0.93", "0.99"), encoding="utf-8"
        ),
        lambda folder: (folder / "manifest.json").write_text("{", encoding="utf-8"),
    ],
    ids=["changed-file", "deleted-file", "added-file", "edited-manifest", "broken-manifest"],
)
def test_tampering_is_detected(store: ArtifactStore, digest: str, tamper: object) -> None:
    assert callable(tamper)
    tamper(store.root / digest)
    with pytest.raises(ModelNotReady):
        store.path(digest)
    with pytest.raises(ModelNotReady):
        store.manifest(digest)


def test_manifest_consistent_with_rewritten_hashes_still_fails(
    store: ArtifactStore, digest: str
) -> None:
    # An attacker who also fixes the file hash in the manifest changes the digest itself.
    folder = store.root / digest
    (folder / "arrays.npz").write_bytes(b"evil")
    manifest = json.loads((folder / "manifest.json").read_text())
    for entry in manifest["files"]:
        if entry["path"] == "arrays.npz":
            entry["sha256"] = file_sha256(folder / "arrays.npz")
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelNotReady, match="does not match"):
        store.path(digest)


@pytest.mark.parametrize(
    "bad",
    ["", "../../etc", "a" * 63, "a" * 65, "A" * 64, "g" * 64, "/" + "a" * 63, "a" * 64 + "\n"],
)
def test_invalid_digests_are_rejected(store: ArtifactStore, bad: str) -> None:
    with pytest.raises(InvalidInput, match="digest"):
        store.path(bad)
    with pytest.raises(InvalidInput):
        store.manifest(bad)


def test_unknown_digest_is_not_ready(store: ArtifactStore) -> None:
    with pytest.raises(ModelNotReady, match="not in the store"):
        store.path("0" * 64)
    assert store.digests() == []


def test_reserved_or_missing_source_is_refused(store: ArtifactStore, tmp_path: Path) -> None:
    src = make_model_dir(tmp_path / "src")
    (src / "manifest.json").write_text("{}", encoding="utf-8")
    with pytest.raises(ValueError, match="reserved"):
        store.put(src, METADATA)
    with pytest.raises(ValueError, match="not a directory"):
        store.put(tmp_path / "absent", METADATA)


def test_symlinks_are_refused(store: ArtifactStore, tmp_path: Path) -> None:
    src = make_model_dir(tmp_path / "src")
    (src / "link").symlink_to(tmp_path / "src" / "arrays.npz")
    with pytest.raises(ValueError, match="symlink"):
        store.put(src, METADATA)
    assert store.digests() == []


def test_symlink_planted_in_a_stored_artifact_is_refused(store: ArtifactStore, digest: str) -> None:
    folder = store.root / digest
    target = folder / "arrays.npz"
    (folder / "elsewhere.npz").write_bytes(target.read_bytes())
    target.unlink()
    target.symlink_to(folder / "elsewhere.npz")
    with pytest.raises(ModelNotReady):
        store.path(digest)
