"""The embedding width the knowledge index schema is built for, and its input check.

The migration and both index implementations import this, so a different embedding model
cannot be introduced by changing one place and forgetting the other.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

EMBEDDING_DIM = 384
"""Width of every stored chunk embedding (all-MiniLM-L6-v2)."""


def check_embeddings(chunk_count: int, embeddings: NDArray[np.float32]) -> NDArray[np.float32]:
    """Return ``embeddings`` as a float32 ``(chunk_count, EMBEDDING_DIM)`` array or raise."""
    array = np.asarray(embeddings, dtype=np.float32)
    if array.shape != (chunk_count, EMBEDDING_DIM):
        raise ValueError(
            f"expected embeddings of shape ({chunk_count}, {EMBEDDING_DIM}), got {array.shape}"
        )
    if not np.isfinite(array).all():
        raise ValueError("embeddings contain NaN or infinity")
    return array
