"""Accuracy, calibration and speed of the default local text classifier on BANKING77.

Trains on train.csv (9,000 rows), scores dev.csv, prints figures. Run from the repo root:

    .venv/bin/python bench/classifier_accuracy.py [--data examples/support-desk/data]
"""

from __future__ import annotations

import argparse
import csv
import itertools
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from scipy.special import softmax

from shipyard.providers.local import MiniLMEmbedder, TextClassifier, train_text_classifier

DEFAULT_DATA = Path(__file__).resolve().parents[1] / "examples" / "support-desk" / "data"


def read_csv(path: Path) -> tuple[list[str], list[str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return [r["text"] for r in rows], [r["category"] for r in rows]


def expected_calibration_error(
    proba: NDArray[np.float64], truth: NDArray[np.intp], bins: int = 15
) -> float:
    """Mean |accuracy - confidence| over equal-width confidence bins, weighted by bin size."""
    confidence = proba.max(axis=1)
    correct = proba.argmax(axis=1) == truth
    edges = np.linspace(0.0, 1.0, bins + 1)
    error = 0.0
    for low, high in itertools.pairwise(edges):
        in_bin = (confidence > low) & (confidence <= high)
        if in_bin.any():
            error += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(error)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    train_texts, train_labels = read_csv(args.data / "train.csv")
    dev_texts, dev_labels = read_csv(args.data / "dev.csv")
    embedder = MiniLMEmbedder()
    embedder.load()  # cold start is measured by the embedder bench, not here

    started = time.perf_counter()
    model = train_text_classifier(train_texts, train_labels, embedder, seed=args.seed)
    train_seconds = time.perf_counter() - started

    proba = model.predict_proba(dev_texts)
    truth = np.array([model.labels.index(label) for label in dev_labels], dtype=np.intp)
    accuracy = float((proba.argmax(axis=1) == truth).mean())
    # Undo the temperature to see what calibration it bought: p^(1/T) renormalised is the
    # calibrated output, so p_raw = softmax(T * log p).
    raw = softmax(model.temperature * np.log(np.maximum(proba, 1e-300)), axis=1)

    single = []
    for text in dev_texts[:200]:
        t0 = time.perf_counter()
        model.predict([text])
        single.append((time.perf_counter() - t0) * 1000)

    with tempfile.TemporaryDirectory() as tmp:
        model.save(Path(tmp))
        size_mb = sum(f.stat().st_size for f in Path(tmp).iterdir()) / 1e6
        t0 = time.perf_counter()
        TextClassifier.load(Path(tmp), embedder)
        load_ms = (time.perf_counter() - t0) * 1000

    print(f"cpu cores                 : {os.cpu_count()}")
    print(f"train / dev rows          : {len(train_texts)} / {len(dev_texts)}")
    print(f"training seconds          : {train_seconds:.1f}")
    print(f"out-of-fold accuracy      : {model.oof_accuracy:.4f}")
    print(f"temperature               : {model.temperature:.3f}")
    print(f"dev accuracy              : {accuracy:.4f}")
    print(f"dev ECE (15 bins) before T: {expected_calibration_error(raw, truth):.4f}")
    print(f"dev ECE (15 bins) after T : {expected_calibration_error(proba, truth):.4f}")
    print(f"predict 1 text, median ms : {statistics.median(single):.1f}")
    print(f"predict 1 text, p95 ms    : {np.percentile(single, 95):.1f}")
    print(f"artifact size MB          : {size_mb:.1f}")
    print(f"load ms (warm embedder)   : {load_ms:.0f}")


if __name__ == "__main__":
    main()
