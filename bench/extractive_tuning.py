"""Tune and measure the offline extractive answerer (shipyard.knowledge.extractive) on the
SQuAD-based RAG dev set.

There is no retrieval index here, so retrieval is simulated: the hits for a question are its
own passage (the gold passage, or for an unanswerable question the passage it was written
against) plus the 4 other passages of the same article closest to it by MiniLM cosine, all 5
ordered by that cosine. Two disjoint seeded samples (600 answerable + 400 unanswerable each):
weights and calibration are chosen on the "tune" sample, every figure is then reported on the
"held-out" one. Run from the repo root (1-3 minutes on 2 cores, mostly embedding; seconds
with --cache):

    .venv/bin/python bench/extractive_tuning.py [--data ../shared/data/squad_rag] [--cache F]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
from numpy.typing import NDArray
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from shipyard.evaluation.metrics.answer import abstention, token_f1
from shipyard.evaluation.metrics.text import normalize
from shipyard.knowledge.extractive import (
    CALIBRATION_CENTER,
    CALIBRATION_SLOPE,
    ExtractiveOptions,
    answer_question,
    score_candidates,
)
from shipyard.knowledge.sentences import split_sentences
from shipyard.knowledge.types import Hit
from shipyard.providers.local import MiniLMEmbedder

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "squad_rag"
PER_SET = {"answerable": 600, "unanswerable": 400}
OTHER_PASSAGES = 4


class CachedEncoder:
    """Wraps the embedder so each distinct text is encoded once for the whole run."""

    def __init__(self, embedder: MiniLMEmbedder) -> None:
        self.embedder = embedder
        self.rows: dict[str, NDArray[np.float32]] = {}

    def warm(self, texts: Sequence[str]) -> None:
        missing = sorted({t for t in texts if t not in self.rows})
        if missing:
            for text, row in zip(missing, self.embedder.encode(missing), strict=True):
                self.rows[text] = row

    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]:
        self.warm(texts)
        return np.stack([self.rows[t] for t in texts])

    def save(self, path: Path) -> None:
        keys = list(self.rows)
        np.savez(path, keys=np.array(keys, dtype=object), rows=np.stack(list(self.rows.values())))

    def load(self, path: Path) -> None:
        if path.exists():
            data = np.load(path, allow_pickle=True)  # our own cache file
            self.rows.update(zip(data["keys"].tolist(), data["rows"], strict=True))


@dataclass
class Case:
    question: str
    answers: list[str]
    answerable: bool
    hits: list[Hit]


@dataclass
class Features:
    """Per-candidate signals of one question, for fast weight search."""

    dense: NDArray[np.float64]
    lexical: NDArray[np.float64]
    prior: NDArray[np.float64]
    correct: NDArray[np.bool_]  # the sentence contains a gold answer (normalised)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def contains_answer(text: str, answers: Sequence[str]) -> bool:
    haystack = f" {normalize(text)} "
    return any(f" {normalize(a)} " in haystack for a in answers if normalize(a))


def sample(dev: list[dict[str, Any]], seed: int) -> tuple[list[dict[str, Any]], ...]:
    rng = random.Random(seed)
    tune: list[dict[str, Any]] = []
    held: list[dict[str, Any]] = []
    for name, size in PER_SET.items():
        pool = [q for q in dev if q["is_answerable"] == (name == "answerable")]
        drawn = rng.sample(pool, 2 * size)
        tune += drawn[:size]
        held += drawn[size:]
    return tune, held


def build_cases(
    questions: list[dict[str, Any]],
    corpus: dict[str, dict[str, Any]],
    passage_vectors: dict[str, NDArray[np.float32]],
    encoder: CachedEncoder,
) -> list[Case]:
    by_article: dict[str, list[str]] = {}
    for pid, row in corpus.items():
        by_article.setdefault(row["article"], []).append(pid)
    cases = []
    for q in questions:
        qv = encoder.encode([q["question"]])[0]
        pids = by_article[q["article"]]
        cosine = {pid: float(passage_vectors[pid] @ qv) for pid in pids}
        others = sorted((p for p in pids if p != q["passage_id"]), key=lambda p: -cosine[p])
        chosen = sorted([q["passage_id"], *others[:OTHER_PASSAGES]], key=lambda p: -cosine[p])
        hits = [
            Hit(
                chunk_id=f"{pid}#0",
                document_id=pid,
                collection_id="squad",
                chunk_index=0,
                text=corpus[pid]["text"],
                start=0,
                end=len(corpus[pid]["text"]),
                heading=None,
                score=cosine[pid],
            )
            for pid in chosen
        ]
        cases.append(Case(q["question"], q["answers"], q["is_answerable"], hits))
    return cases


def features(case: Case, encoder: CachedEncoder) -> Features:
    candidates = score_candidates(case.question, case.hits, encoder)
    return Features(
        dense=np.array([c.dense for c in candidates]),
        lexical=np.array([c.lexical for c in candidates]),
        prior=np.array([c.prior for c in candidates]),
        correct=np.array(
            [contains_answer(c.hit.text[c.start : c.end], case.answers) for c in candidates]
        ),
    )


def search_weights(cases: list[Case], feats: list[Features]) -> tuple[float, float, float]:
    """Grid over the weight simplex: top-1 sentence recall on answerable questions, and ROC AUC
    of the best score separating answerable from unanswerable."""
    rows = []
    steps = [i / 20 for i in range(21)]
    for wd in steps:
        for wl in steps:
            wp = round(1 - wd - wl, 2)
            if wp < 0 or wp > 0.3:
                continue
            best, right = [], []
            for f in feats:
                score = wd * f.dense + wl * f.lexical + wp * f.prior
                top = int(np.argmax(score))
                best.append(float(score[top]))
                right.append(bool(f.correct[top]))
            answerable = [c.answerable for c in cases]
            hit_rate = float(np.mean([r for r, a in zip(right, answerable, strict=True) if a]))
            auc = float(roc_auc_score(answerable, best))
            rows.append((hit_rate + auc, hit_rate, auc, wd, wl, wp))
    rows.sort(reverse=True)
    print("\nweight search (tune set): recall@1 = top sentence holds a gold answer")
    print(f"{'dense':>6} {'lexical':>7} {'prior':>6} {'recall@1':>9} {'AUC':>6}")
    named = {(1.0, 0.0, 0.0): "dense only", (0.0, 1.0, 0.0): "lexical only"}
    shown = rows[:8] + [r for r in rows if (r[3], r[4], r[5]) in named]
    for _, recall, auc, wd, wl, wp in shown:
        label = named.get((wd, wl, wp), "")
        print(f"{wd:6.2f} {wl:7.2f} {wp:6.2f} {recall:9.3f} {auc:6.3f}  {label}")
    _, _, _, wd, wl, wp = rows[0]
    return wd, wl, wp


def fit_calibration(cases: list[Case], feats: list[Features], options: ExtractiveOptions) -> None:
    """Logistic fit of "the top sentence holds a gold answer" on the best blended score."""
    total = options.dense_weight + options.lexical_weight + options.rank_weight
    x, y = [], []
    for case, f in zip(cases, feats, strict=True):
        score = (
            options.dense_weight * f.dense
            + options.lexical_weight * f.lexical
            + options.rank_weight * f.prior
        ) / total
        top = int(np.argmax(score))
        x.append([float(score[top])])
        y.append(case.answerable and bool(f.correct[top]))
    model = LogisticRegression(C=1e4).fit(np.array(x), np.array(y))
    slope = float(model.coef_[0][0])
    center = -float(model.intercept_[0]) / slope
    print(f"\ncalibration fit (tune): slope={slope:.2f} center={center:.3f}")
    print(f"module constants:       slope={CALIBRATION_SLOPE:.2f} center={CALIBRATION_CENTER:.3f}")


THRESHOLDS = [round(0.025 * i, 3) for i in range(4, 29)]


def abstention_table(
    cases: list[Case], confidences: list[float]
) -> list[tuple[float, dict[str, Any], float]]:
    """(threshold, abstention P/R/F1, share of answerable questions still answered) rows."""
    answerable = [c.answerable for c in cases]
    rows = []
    for threshold in THRESHOLDS:
        predicted = [c >= threshold for c in confidences]
        coverage = float(np.mean([p for p, a in zip(predicted, answerable, strict=True) if a]))
        rows.append((threshold, abstention(answerable, predicted), coverage))
    return rows


def pick_threshold(rows: list[tuple[float, dict[str, Any], float]]) -> float:
    """Highest abstention F1 among thresholds that still answer >= 80% of answerable ones."""
    allowed = [(scores["f1"] or 0.0, t) for t, scores, coverage in rows if coverage >= 0.8]
    return max(allowed)[1]


def evaluate(
    tune: list[Case], held: list[Case], encoder: CachedEncoder, options: ExtractiveOptions
) -> None:
    always = replace(options, abstain_below=0.0)
    tune_confidence = [
        answer_question(c.question, c.hits, encoder, always).confidence for c in tune
    ]
    threshold = pick_threshold(abstention_table(tune, tune_confidence))
    print(f"\nthreshold picked on tune (max abstention F1, coverage >= 0.8): {threshold}")

    results = [answer_question(c.question, c.hits, encoder, always) for c in held]
    pairs = [(c, r) for c, r in zip(held, results, strict=True) if c.answerable]
    recall = np.mean([contains_answer(r.answer, c.answers) for c, r in pairs])
    f1 = np.mean([max(token_f1(a, r.answer) for a in c.answers) for c, r in pairs])
    sentences = np.mean([len(r.evidence) for _, r in pairs])
    print(
        f"held-out answerable, never abstaining: sentence recall={recall:.3f} "
        f"token F1={f1:.3f} sentences/answer={sentences:.2f}"
    )
    confidences = [r.confidence for r in results]
    auc = roc_auc_score([c.answerable for c in held], confidences)
    print(f"held-out confidence ROC AUC, answerable vs unanswerable: {auc:.3f}")
    print(f"\n{'threshold':>9} {'abst P':>7} {'abst R':>7} {'abst F1':>7} {'coverage':>8}")
    for t, scores, coverage in abstention_table(held, confidences):
        mark = "  <- picked on tune" if t == threshold else ""
        print(
            f"{t:9.3f} {scores['precision']:7.3f} {scores['recall']:7.3f} "
            f"{scores['f1'] or 0.0:7.3f} {coverage:8.3f}{mark}"
        )


def margin_table(cases: list[Case], encoder: CachedEncoder, options: ExtractiveOptions) -> None:
    print(f"\n{'margin':>6} {'recall':>7} {'F1':>6} {'sentences':>9}   (held-out answerable)")
    pairs = [c for c in cases if c.answerable]
    for margin in (0.0, 0.02, 0.05, 0.1, math.inf):
        opts = replace(options, abstain_below=0.0, adjacent_margin=margin)
        results = [answer_question(c.question, c.hits, encoder, opts) for c in pairs]
        recall = np.mean(
            [contains_answer(r.answer, c.answers) for c, r in zip(pairs, results, strict=True)]
        )
        f1 = np.mean(
            [
                max(token_f1(a, r.answer) for a in c.answers)
                for c, r in zip(pairs, results, strict=True)
            ]
        )
        sentences = np.mean([len(r.evidence) for r in results])
        print(f"{margin:6.2f} {recall:7.3f} {f1:6.3f} {sentences:9.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--cache", type=Path, help="an .npz file to keep embeddings between runs")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    started = time.perf_counter()
    corpus = {row["passage_id"]: row for row in read_jsonl(args.data / "corpus.jsonl")}
    tune_rows, held_rows = sample(read_jsonl(args.data / "dev.jsonl"), args.seed)
    encoder = CachedEncoder(MiniLMEmbedder())
    if args.cache:
        encoder.load(args.cache)
    # Everything is embedded up front in large batches; answer_question then hits the cache.
    passages = [row["text"] for row in corpus.values()]
    sentences = [t[a:b] for t in passages for a, b in split_sentences(t)]
    encoder.warm(passages + sentences + [q["question"] for q in tune_rows + held_rows])
    if args.cache:
        encoder.save(args.cache)
    vectors = {pid: encoder.rows[row["text"]] for pid, row in corpus.items()}
    print(f"embedded {len(encoder.rows)} texts in {time.perf_counter() - started:.0f}s")

    tune = build_cases(tune_rows, corpus, vectors, encoder)
    held = build_cases(held_rows, corpus, vectors, encoder)
    gold_first = np.mean(
        [c.hits[0].document_id == r["passage_id"] for c, r in zip(held, held_rows, strict=True)]
    )
    print(f"simulated retrieval: own passage ranked first for {gold_first:.2f} of held-out")

    wd, wl, wp = search_weights(tune, [features(c, encoder) for c in tune])
    print(f"chosen on tune: dense={wd} lexical={wl} prior={wp}")
    defaults = ExtractiveOptions()
    print(
        f"module defaults: dense={defaults.dense_weight} lexical={defaults.lexical_weight} "
        f"prior={defaults.rank_weight} margin={defaults.adjacent_margin} "
        f"abstain_below={defaults.abstain_below}"
    )
    fit_calibration(tune, [features(c, encoder) for c in tune], defaults)
    evaluate(tune, held, encoder, defaults)
    margin_table(held, encoder, defaults)
    print(f"\ntotal {time.perf_counter() - started:.0f}s")


if __name__ == "__main__":
    main()
