"""The sentence-embedding cache returns what the encoder would, and encodes each text once."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from shipyard.knowledge.encoding_cache import CachingEncoder


class CountingEncoder:
    def __init__(self) -> None:
        self.seen: list[str] = []

    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]:
        self.seen.extend(texts)
        return np.array([[len(t), t.count("a"), 1.0] for t in texts], dtype=np.float32)


def test_cache_hits_and_order() -> None:
    inner = CountingEncoder()
    cache = CachingEncoder(lambda: inner, max_entries=3)
    first = cache.encode(["aa", "b", "aa"])
    assert first.tolist() == [[2, 2, 1], [1, 0, 1], [2, 2, 1]]
    assert inner.seen == ["aa", "b"]
    second = cache.encode(["b", "ccc"])
    assert second.tolist() == [[1, 0, 1], [3, 0, 1]]
    assert inner.seen == ["aa", "b", "ccc"]
    cache.encode(["dddd"])  # evicts the least recently used ("aa")
    cache.encode(["aa"])
    assert inner.seen == ["aa", "b", "ccc", "dddd", "aa"]
