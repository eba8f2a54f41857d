"""The default local text classifier, trained for real on a BANKING77 slice (10 intents)."""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer

from shipyard.errors import DataInvalid, ModelNotReady
from shipyard.providers.local import (
    ArtifactStore,
    MiniLMEmbedder,
    TextClassifier,
    train_text_classifier,
)
from shipyard.providers.local.text_classifier import _Tfidf

# The BANKING77 split shipped with the example project (CC BY 4.0, see its data/README.md).
DATA = Path(__file__).resolve().parents[2] / "examples" / "support-desk" / "data"
N_LABELS, TRAIN_PER_LABEL, TEST_PER_LABEL = 10, 20, 10


def _slice(file: str, per_label: int) -> tuple[list[str], list[str]]:
    """The first ``per_label`` rows of each of the first N_LABELS intents, in file order."""
    by_label: dict[str, list[str]] = defaultdict(list)
    with (DATA / file).open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            label = row["category"]
            if label in by_label or len(by_label) < N_LABELS:
                by_label[label].append(row["text"])
    texts = [t for rows in by_label.values() for t in rows[:per_label]]
    labels = [label for label, rows in by_label.items() for _ in rows[:per_label]]
    return texts, labels


@pytest.fixture(scope="module")
def embedder() -> MiniLMEmbedder:
    return MiniLMEmbedder()


@pytest.fixture(scope="module")
def train_set() -> tuple[list[str], list[str]]:
    return _slice("train.csv", TRAIN_PER_LABEL)


@pytest.fixture(scope="module")
def test_set() -> tuple[list[str], list[str]]:
    return _slice("dev.csv", TEST_PER_LABEL)


@pytest.fixture(scope="module")
def model(embedder: MiniLMEmbedder, train_set: tuple[list[str], list[str]]) -> TextClassifier:
    texts, labels = train_set
    return train_text_classifier(texts, labels, embedder, seed=1)


def test_predictions_are_valid_and_better_than_chance(
    model: TextClassifier, test_set: tuple[list[str], list[str]]
) -> None:
    texts, labels = test_set
    predictions = model.predict(texts)
    assert len(predictions) == len(texts)
    for prediction in predictions:
        assert prediction.label in model.labels
        assert 0.0 <= prediction.confidence <= 1.0
        assert next(iter(prediction.scores)) == prediction.label
        assert len(prediction.scores) == 5
        values = list(prediction.scores.values())
        assert values == sorted(values, reverse=True)
        assert prediction.scores[prediction.label] == prediction.confidence
    accuracy = np.mean([p.label == t for p, t in zip(predictions, labels, strict=True)])
    assert accuracy >= 0.7  # chance is 0.1; measured 0.94 on this slice


def test_probabilities_are_distributions_in_label_order(
    model: TextClassifier, test_set: tuple[list[str], list[str]]
) -> None:
    texts, _ = test_set
    proba = model.predict_proba(texts[:15])
    assert proba.shape == (15, N_LABELS)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    assert model.labels == sorted(set(model.labels))
    top = [model.labels[i] for i in proba.argmax(axis=1)]
    assert top == [p.label for p in model.predict(texts[:15])]
    assert model.predict_proba([]).shape == (0, N_LABELS)


def test_training_records_out_of_fold_evidence(
    model: TextClassifier, train_set: tuple[list[str], list[str]]
) -> None:
    texts, labels = train_set
    assert model.oof_confidence.shape == model.oof_correct.shape == (len(texts),)
    assert model.oof_correct.dtype == np.bool_
    assert ((model.oof_confidence > 0) & (model.oof_confidence <= 1)).all()
    assert 0.5 < model.oof_accuracy <= 1.0
    assert 0.05 < model.temperature < 20.0
    meta = model.metadata()
    assert meta["n_examples"] == len(texts)
    assert meta["labels"] == sorted(set(labels))
    assert meta["oof_accuracy"] == model.oof_accuracy
    assert meta["temperature"] == model.temperature
    assert meta["embedder_model_id"] == "all-MiniLM-L6-v2-onnx-int8"
    assert meta["hyperparameters"]["embedding_c"] == 10.0
    assert meta["training_seconds"] > 0
    json.dumps(meta)  # it goes into manifests as is


def test_save_load_round_trip_predicts_identically(
    model: TextClassifier,
    embedder: MiniLMEmbedder,
    test_set: tuple[list[str], list[str]],
    tmp_path: Path,
) -> None:
    model.save(tmp_path / "model")
    loaded = TextClassifier.load(tmp_path / "model", embedder)
    texts = test_set[0][::4]  # every intent, fewer texts: identity is what is checked
    np.testing.assert_array_equal(loaded.predict_proba(texts), model.predict_proba(texts))
    assert loaded.labels == model.labels
    assert loaded.temperature == model.temperature
    assert loaded.metadata() == model.metadata()
    np.testing.assert_array_equal(loaded.oof_confidence, model.oof_confidence)
    np.testing.assert_array_equal(loaded.oof_correct, model.oof_correct)
    assert {p.name for p in (tmp_path / "model").iterdir()} == {"classifier.json", "arrays.npz"}


def test_round_trip_through_the_artifact_store(
    model: TextClassifier,
    embedder: MiniLMEmbedder,
    test_set: tuple[list[str], list[str]],
    tmp_path: Path,
) -> None:
    model.save(tmp_path / "trained")
    store = ArtifactStore(tmp_path / "store")
    digest = store.put(tmp_path / "trained", model.metadata())
    loaded = TextClassifier.load(store.path(digest), embedder)
    texts = test_set[0][::4]
    np.testing.assert_array_equal(loaded.predict_proba(texts), model.predict_proba(texts))
    assert store.manifest(digest)["metadata"]["labels"] == model.labels


def test_unreadable_or_foreign_saves_are_refused(
    model: TextClassifier, embedder: MiniLMEmbedder, tmp_path: Path
) -> None:
    with pytest.raises(ModelNotReady):
        TextClassifier.load(tmp_path / "absent", embedder)
    model.save(tmp_path / "m")
    config_path = tmp_path / "m" / "classifier.json"
    config = json.loads(config_path.read_text())
    config["metadata"]["embedder_fingerprint"] = "0" * 64
    config_path.write_text(json.dumps(config))
    with pytest.raises(ModelNotReady, match="other embeddings"):
        TextClassifier.load(tmp_path / "m", embedder)
    config_path.write_text("{not json")
    with pytest.raises(ModelNotReady):
        TextClassifier.load(tmp_path / "m", embedder)


def test_own_tfidf_transform_equals_sklearn(train_set: tuple[list[str], list[str]]) -> None:
    texts, _ = train_set
    unseen = ["My card arrived but the exchange rate was wrong!!", "", "top up top up top up"]
    for analyzer, ngrams in [("word", (1, 2)), ("char_wb", (2, 5))]:
        ours = _Tfidf.fit(texts, analyzer, ngrams)
        reference = TfidfVectorizer(
            analyzer=analyzer, ngram_range=ngrams, sublinear_tf=True, min_df=2
        ).fit(texts)
        expected = reference.transform(texts[:40] + unseen).toarray()
        np.testing.assert_allclose(ours.transform(texts[:40] + unseen).toarray(), expected)


def test_two_labels_and_progress_messages(embedder: MiniLMEmbedder) -> None:
    texts, labels = _slice("train.csv", 8)
    keep = [i for i, label in enumerate(labels) if label in {"card_arrival", "exchange_rate"}]
    messages: list[str] = []
    model = train_text_classifier(
        [texts[i] for i in keep], [labels[i] for i in keep], embedder, progress=messages.append
    )
    assert model.labels == ["card_arrival", "exchange_rate"]
    prediction = model.predict(["What is the exchange rate for euros today?"])[0]
    assert prediction.label == "exchange_rate"
    assert len(prediction.scores) == 2
    assert any("fold" in message for message in messages)


@pytest.mark.parametrize(
    ("texts", "labels", "message"),
    [
        (["a", "b"], ["x"], "equal length"),
        (["a", "b", "c"], ["x", "x", "x"], "two different labels"),
        (["a", "b", "c"], ["x", "x", "y"], "too few for: y"),
        (["a", None, "c", "d"], ["x", "x", "y", "y"], "row 1"),
        (["a", "b", "c", "d"], ["x", "x", "y", " "], "row 3"),
        ("abcd", ["x", "x", "y", "y"], "sequences of strings"),
    ],
)
def test_bad_training_data_is_rejected(
    embedder: MiniLMEmbedder, texts: list[str], labels: list[str], message: str
) -> None:
    with pytest.raises(DataInvalid, match=message):
        train_text_classifier(texts, labels, embedder)
