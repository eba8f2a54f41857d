"""Content-addressed storage of trained model folders.

A folder is stored under the sha256 digest of its content, so a task version can pin the exact
model it was evaluated with, identical trainings are stored once, and any later change to a
stored file (corruption or tampering) is detected before the model is used.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from shipyard.errors import FieldProblem, InvalidInput, ModelNotReady
from shipyard.providers.local.embedder import file_sha256

MANIFEST = "manifest.json"
FORMAT = "shipyard.artifact/1"
_DIGEST = re.compile(r"[0-9a-f]{64}")
_INCOMING = ".incoming-"


def _content_digest(file_hashes: dict[str, str]) -> str:
    """sha256 over the sorted (relative path, file sha256) pairs; NUL and newline separators
    cannot occur in either part, so two different listings never hash alike."""
    digest = hashlib.sha256()
    for relative, sha in sorted(file_hashes.items()):
        digest.update(f"{relative}\0{sha}\n".encode())
    return digest.hexdigest()


def _hash_tree(directory: Path) -> dict[str, str]:
    """sha256 of every file below ``directory`` by POSIX relative path; refuses symlinks, which
    could point outside the store and change without the folder changing."""
    hashes = {}
    for path in sorted(directory.rglob("*")):
        if path.is_symlink():
            raise ModelNotReady(f"{path} is a symlink; model folders hold regular files only")
        if path.is_file():
            hashes[path.relative_to(directory).as_posix()] = file_sha256(path)
    return hashes


class ArtifactStore:
    """Model folders under ``root/<digest>/``, each with a ``manifest.json`` listing its files."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def put(self, src_dir: Path, metadata: dict[str, Any]) -> str:
        """Copy ``src_dir`` into the store and return its digest (the same content, the same
        digest: storing it again keeps the existing copy)."""
        if not src_dir.is_dir():
            raise ValueError(f"{src_dir} is not a directory")
        if (src_dir / MANIFEST).exists():
            raise ValueError(f"{src_dir} already has a {MANIFEST}; that name is reserved")
        if any(p.is_symlink() for p in src_dir.rglob("*")):
            raise ValueError(f"{src_dir} contains symlinks; model folders hold regular files only")
        self.root.mkdir(parents=True, exist_ok=True)
        # Staging inside root keeps the final rename on one filesystem, hence atomic: readers
        # never see a half-written artifact, and a crash leaves only an ignored staging folder.
        staging = Path(tempfile.mkdtemp(prefix=_INCOMING, dir=self.root))
        staging.chmod(0o755)  # mkdtemp makes it owner-only; serving processes may run as others
        try:
            shutil.copytree(src_dir, staging, dirs_exist_ok=True, symlinks=True)
            files = _hash_tree(staging)  # hash what was stored, not the source
            manifest = {
                "format": FORMAT,
                "metadata": metadata,
                "files": [{"path": p, "sha256": h} for p, h in sorted(files.items())],
            }
            text = json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False)
            (staging / MANIFEST).write_text(text + "\n", encoding="utf-8")
            digest = _content_digest({**files, MANIFEST: file_sha256(staging / MANIFEST)})
            target = self.root / digest
            if not target.exists():
                try:
                    os.replace(staging, target)
                except OSError:  # a concurrent put of the same content won the race
                    if not target.is_dir():
                        raise
            return digest
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def path(self, digest: str) -> Path:
        """The artifact folder, after checking every file against the manifest and the digest."""
        folder = self.root / _checked(digest)
        if not (folder / MANIFEST).is_file():
            raise ModelNotReady(f"model artifact {digest} is not in the store at {self.root}")
        manifest = self._read_manifest(folder)
        try:
            listed = {entry["path"]: entry["sha256"] for entry in manifest["files"]}
        except (KeyError, TypeError) as exc:
            raise ModelNotReady(f"model artifact {digest} has a malformed manifest") from exc
        actual = _hash_tree(folder)
        manifest_sha = actual.pop(MANIFEST)
        if actual != listed:
            changed = sorted(set(actual.items()) ^ set(listed.items()))
            names = sorted({name for name, _ in changed})
            raise ModelNotReady(f"model artifact {digest} was modified: {', '.join(names)}")
        if _content_digest({**listed, MANIFEST: manifest_sha}) != digest:
            raise ModelNotReady(f"model artifact {digest} has a manifest that does not match it")
        return folder

    def manifest(self, digest: str) -> dict[str, Any]:
        """The verified manifest: ``metadata`` as given to :meth:`put` and the ``files`` list."""
        return self._read_manifest(self.path(digest))

    def digests(self) -> list[str]:
        """Digests of the stored artifacts (unverified; :meth:`path` verifies one)."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if _DIGEST.fullmatch(p.name))

    @staticmethod
    def _read_manifest(folder: Path) -> dict[str, Any]:
        try:
            manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ModelNotReady(f"model artifact {folder.name} has an unreadable manifest") from exc
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise ModelNotReady(f"model artifact {folder.name} has an unknown manifest format")
        return manifest


def _checked(digest: str) -> str:
    # Only exact digests reach the file system: no "..", no separators, no other names.
    if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
        problem = FieldProblem("digest", "must be 64 lowercase hexadecimal characters")
        raise InvalidInput(f"not a model artifact digest: {digest!r}", [problem])
    return digest
