"""API key tokens: generation, parsing and keyed hashing.

A token is ``sy_<key id>_<secret>``. The key id is public and indexes the row; only an
HMAC-SHA256 of the whole token under the server's secret key is stored, so a stolen database
does not yield usable keys, and comparisons are constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

TOKEN_PREFIX = "sy"  # noqa: S105 - a public prefix, not a secret
_TOKEN_RE = re.compile(r"^sy_([a-z0-9]{12})_([A-Za-z0-9_-]{43})$")


def new_token() -> tuple[str, str]:
    """Return (key id, full token)."""
    key_id = "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(12))
    return key_id, f"{TOKEN_PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"


def parse_token(token: str) -> str | None:
    """The key id of a well-formed token, or None."""
    match = _TOKEN_RE.match(token)
    return match.group(1) if match else None


def hash_token(secret_key: bytes, token: str) -> str:
    return hmac.new(secret_key, token.encode(), hashlib.sha256).hexdigest()


def token_matches(secret_key: bytes, token: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_token(secret_key, token), stored_hash)
