"""Raw uploaded files, kept durably until their document is deleted.

An upload is written here before its document row commits, so an accepted document can always
be (re)processed after a crash. Files are addressed by tenant and content hash; a tenant's
blobs live in its own folder so deleting one tenant's document never touches another's.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
from pathlib import Path

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_TENANT = re.compile(r"^[0-9a-f-]{36}$")


def sha256_hex(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


class BlobStore:
    def __init__(self, root: Path) -> None:
        self._root = root

    def _path(self, tenant_id: str, digest: str) -> Path:
        # Both parts come from our own database, but a path is built from them: check anyway.
        if not _TENANT.match(tenant_id) or not _HEX64.match(digest):
            raise ValueError("invalid blob address")
        return self._root / tenant_id / digest[:2] / digest

    def put(self, tenant_id: str, content: bytes) -> str:
        digest = sha256_hex(content)
        path = self._path(tenant_id, digest)
        if path.exists():
            return digest
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(f".{digest}.{secrets.token_hex(4)}")
        with temp.open("wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())  # durable before the document row says "accepted"
        os.replace(temp, path)
        return digest

    def get(self, tenant_id: str, digest: str) -> bytes:
        path = self._path(tenant_id, digest)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            # A deleter that crashed between setting the file aside and deciding may have left
            # it there while a new document refers to it: bring it back (same bytes, same name).
            for aside in sorted(path.parent.glob(f".{digest}.aside.*")):
                os.replace(aside, path)
                return path.read_bytes()
            raise

    def exists(self, tenant_id: str, digest: str) -> bool:
        return self._path(tenant_id, digest).exists()

    def delete(self, tenant_id: str, digest: str) -> None:
        self._path(tenant_id, digest).unlink(missing_ok=True)

    # Deleting a file that a concurrent upload of the same bytes may just have come to need
    # takes three steps (storage/knowledge_repositories.py, drop_unreferenced_blobs): set it
    # aside (an atomic rename), check the database for references again, then discard or
    # restore it. An upload, for its part, writes the file again after its row commits if the
    # file is gone. Whatever the interleaving, one of the two sees the other.
    def set_aside(self, tenant_id: str, digest: str) -> Path | None:
        """Move the file off its address; None if there was none."""
        path = self._path(tenant_id, digest)
        aside = path.with_name(f".{digest}.aside.{secrets.token_hex(4)}")
        try:
            os.replace(path, aside)
        except FileNotFoundError:
            return None
        return aside

    def restore(self, tenant_id: str, digest: str, aside: Path) -> None:
        """Put a set-aside file back (over a fresh copy of the same bytes, if one was written).
        Gone already: a reader needing the bytes put it back itself (see :meth:`get`)."""
        with contextlib.suppress(FileNotFoundError):
            os.replace(aside, self._path(tenant_id, digest))

    def discard(self, aside: Path) -> None:
        aside.unlink(missing_ok=True)
