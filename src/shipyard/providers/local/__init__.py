"""The embedded local models: MiniLM embeddings (ONNX Runtime, no torch, no network), the
default text classifier trained on them, and a content-addressed store for trained models."""

from shipyard.providers.local.artifacts import ArtifactStore
from shipyard.providers.local.embedder import MiniLMEmbedder
from shipyard.providers.local.text_classifier import (
    Prediction,
    TextClassifier,
    train_text_classifier,
)

__all__ = [
    "ArtifactStore",
    "MiniLMEmbedder",
    "Prediction",
    "TextClassifier",
    "train_text_classifier",
]
