"""The shapes of the names callers choose, in one place: the API's request models, the specs,
the services and the repositories all check against these (imports nothing of ours)."""

from __future__ import annotations

import re
from typing import Final

SLUG: Final = r"^[a-z][a-z0-9-]{1,62}$"
"""Task and tenant names: 2-63 lowercase letters, digits or '-', starting with a letter."""

COLLECTION: Final = r"^[a-z][a-z0-9-]{0,62}$"
"""Collection names: 1-63 lowercase letters, digits or '-', starting with a letter."""

GROUP: Final = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
"""Access groups: 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit."""

SLUG_RE: Final = re.compile(SLUG)
COLLECTION_RE: Final = re.compile(COLLECTION)
GROUP_RE: Final = re.compile(GROUP)
