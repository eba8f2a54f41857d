"""Checks on object ids taken from requests."""

from __future__ import annotations

import uuid


def is_uuid(value: str) -> bool:
    """Whether ``value`` is a UUID in canonical form; anything else can never be one of our
    ids, so it is answered like an unknown id without a database query."""
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False
