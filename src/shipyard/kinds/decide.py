"""``decide``: recommend one of a closed set of options, with a calibrated confidence, the most
similar past cases as evidence and a rationale built only from them.

Offline model (``local`` / ``minilm-tfidf-logreg``): the classifier of kind classify
(providers/local/text_classifier.py) over the options, plus a case memory: every training row's
text, decision and MiniLM embedding, searched by cosine similarity. The recommendation is the
classifier's; the evidence shows the precedent it resembles, so a reviewer sees at a glance
whether past decisions agree. Nothing in the rationale is generated: it counts and quotes the
evidence and the model's probability.

Any other model route is a chat model (kinds/llm_structured.py): training (when the task has
training data) only builds the case memory, quoted to the model as data and returned as the
evidence; the model's decision has no calibrated confidence, so every run goes to review.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from shipyard.errors import ConfigError, ModelNotReady
from shipyard.kinds.base import Example, KindResult, Progress, RunContext, TaskRunner
from shipyard.kinds.classify import LOCAL_MODEL, input_text, training_labels
from shipyard.kinds.llm_structured import (
    LLMDecideRunner,
    Precedent,
    RouterFactory,
    is_llm_route,
)
from shipyard.providers.local import MiniLMEmbedder, TextClassifier, train_text_classifier
from shipyard.spec import TaskSpec

DECISION, CONFIDENCE, RATIONALE = "decision", "confidence", "rationale"
EVIDENCE, ALTERNATIVES = "evidence", "alternatives"
NEIGHBOURS = 5
# Two options this close are a coin toss, so a person decides whatever the threshold. With
# policy.review_below >= (1 + TIE_MARGIN) / 2 = 0.55 the rule adds nothing (the top probability
# of such a near tie is below 0.55); it guards tasks with a lower threshold or none.
TIE_MARGIN = 0.10
NEAR_TIE = "near_tie"
QUOTE_CHARS = 300
CASES_FILE = "cases.json"
VECTORS_FILE = "cases.npz"
CASES_FORMAT = "shipyard.decide-cases/1"
_LAST_WORD = re.compile(r"\s+\S*$")


@dataclass(frozen=True)
class PastCase:
    """One training row: where it is in the training file, its text and what was decided."""

    line: int
    text: str
    decision: str


@dataclass(frozen=True)
class Neighbour:
    case: PastCase
    similarity: float  # cosine similarity of the MiniLM embeddings


@dataclass(eq=False)
class CaseMemory:
    """The past cases and their unit-length embeddings; stored as JSON + ``.npz``, no pickle."""

    source: str  # the training file, as the spec named it
    cases: list[PastCase]
    vectors: NDArray[np.float32]  # shape (len(cases), 384), rows of norm 1
    fingerprint: str  # of the embedder that made the vectors

    def nearest(self, queries: NDArray[np.float32], k: int) -> list[list[Neighbour]]:
        """The ``k`` most similar cases per query, most similar first (ties: file order)."""
        k = min(k, len(self.cases))
        similarities = queries @ self.vectors.T  # cosine, as both sides have norm 1
        found = []
        for row in similarities:
            top = np.argpartition(-row, k - 1)[:k]
            top = top[np.lexsort((top, -row[top]))]
            found.append([Neighbour(self.cases[i], float(row[i])) for i in top])
        return found

    def save(self, directory: Path) -> None:
        cases = [{"line": c.line, "text": c.text, "decision": c.decision} for c in self.cases]
        config = {"format": CASES_FORMAT, "source": self.source, "fingerprint": self.fingerprint}
        text = json.dumps({**config, "cases": cases}, ensure_ascii=False)
        (directory / CASES_FILE).write_text(text, encoding="utf-8")
        np.savez_compressed(directory / VECTORS_FILE, vectors=self.vectors)

    @classmethod
    def load(cls, directory: Path, embedder: MiniLMEmbedder) -> CaseMemory:
        try:
            data = json.loads((directory / CASES_FILE).read_text(encoding="utf-8"))
            if data.get("format") != CASES_FORMAT:
                raise ModelNotReady(f"{directory}: cases format {data.get('format')!r}")
            if data["fingerprint"] != embedder.fingerprint:
                raise ModelNotReady(f"{directory} was trained on other embeddings; retrain it")
            cases = [
                PastCase(int(c["line"]), str(c["text"]), str(c["decision"])) for c in data["cases"]
            ]
            with np.load(directory / VECTORS_FILE, allow_pickle=False) as npz:
                vectors = np.asarray(npz["vectors"], dtype=np.float32)
        except (OSError, KeyError, TypeError, ValueError) as exc:  # JSON errors are ValueErrors
            raise ModelNotReady(
                f"case memory at {directory} is missing or unreadable: {exc}"
            ) from exc
        if vectors.shape != (len(cases), embedder.dimension):
            raise ModelNotReady(f"case memory at {directory}: vectors do not match the cases")
        return cls(str(data["source"]), cases, vectors, embedder.fingerprint)


def quote_of(text: str) -> str:
    """The case text, cut to at most QUOTE_CHARS at a word boundary: a verbatim prefix, so
    offsets 0 and len(quote) are true positions in the case text."""
    if len(text) <= QUOTE_CHARS:
        return text
    cut = text[:QUOTE_CHARS]
    if not text[QUOTE_CHARS].isspace():  # the cut fell inside a word: drop that word
        shorter = _LAST_WORD.sub("", cut)
        cut = shorter or cut  # one 300-character "word": keep the hard cut
    return cut.rstrip()


def _similarity_range(group: Sequence[Neighbour]) -> str:
    high, low = f"{group[0].similarity:.2f}", f"{group[-1].similarity:.2f}"
    return f"similarity {high}" if high == low else f"similarity {high} to {low}"


def _decided(count: int, decision: str, group: Sequence[Neighbour]) -> str:
    verb = "was" if count == 1 else "were"
    return f"{verb} decided '{decision}' ({_similarity_range(group)})"


def build_rationale(decision: str, confidence: float, evidence: Sequence[Neighbour]) -> str:
    """Counts, decisions and similarities of the evidence, and the model's probability: every
    word refers to something in the output (the evidence is ordered most similar first)."""
    groups: dict[str, list[Neighbour]] = {}
    for neighbour in evidence:
        groups.setdefault(neighbour.case.decision, []).append(neighbour)
    agreeing = groups.pop(decision, [])
    n = len(evidence)
    if n == 1:
        only = evidence[0].case.decision
        parts = [f"the most similar past case {_decided(1, only, evidence)}"]
    else:
        cases = f"the {n} most similar past cases"
        if agreeing:
            parts = [f"{len(agreeing)} of {cases} {_decided(len(agreeing), decision, agreeing)}"]
        else:
            parts = [f"none of {cases} was decided '{decision}'"]
        parts += [f"{len(g)} {_decided(len(g), other, g)}" for other, g in groups.items()]
    body = "; ".join(parts)
    # The probability exactly as in the output's `confidence`: 0.9969 must not read as 1.00.
    return f"Recommended '{decision}': {body}; the model's probability is {confidence}."


def near_tie(probabilities: NDArray[np.float64]) -> bool:
    """Whether the two most probable options are within TIE_MARGIN of each other."""
    if len(probabilities) < 2:
        return False
    second, first = np.sort(probabilities)[-2:]
    return bool(first - second < TIE_MARGIN)


def citation(neighbour: Neighbour, source: str) -> dict[str, Any]:
    """A past case as a Citation (spec/typed_io.py): the case id, the file, the decision."""
    quote = quote_of(neighbour.case.text)
    return {
        "document_id": f"case:{neighbour.case.line}",
        "source": source,
        "title": neighbour.case.decision,
        "chunk": 0,
        "quote": quote,
        "start": 0,
        "end": len(quote),
    }


class DecideRunner:
    def __init__(
        self,
        spec: TaskSpec,
        model: TextClassifier,
        memory: CaseMemory,
        embedder: MiniLMEmbedder,
        artifact: str | None,
    ) -> None:
        self._spec = spec
        self._model = model
        self._memory = memory
        self._embedder = embedder
        self._artifact = artifact
        self._k = min(NEIGHBOURS, spec.output[EVIDENCE].max_items or NEIGHBOURS)
        alternatives = spec.output.get(ALTERNATIVES)
        self._alternatives = (
            None if alternatives is None else alternatives.max_items or len(model.labels)
        )

    @property
    def model_name(self) -> str:
        return f"{self._spec.model.provider}/{self._spec.model.model}"

    @property
    def artifact(self) -> str | None:
        return self._artifact

    def out_of_fold(self) -> tuple[list[float], list[bool]]:
        """Held-out confidence and correctness per training case (``shipyard calibrate``)."""
        return (
            [float(c) for c in self._model.oof_confidence],
            [bool(c) for c in self._model.oof_correct],
        )

    def run(self, inputs: Mapping[str, Any], context: RunContext | None = None) -> KindResult:
        return self.run_many([inputs])[0]

    def run_many(
        self, batch: Sequence[Mapping[str, Any]], context: RunContext | None = None
    ) -> list[KindResult]:
        """One embedding pass serves both the classifier and the case search; ``model_ms``
        is the batch time shared equally."""
        started = time.perf_counter()
        texts = [input_text(self._spec, inputs) for inputs in batch]
        vectors = self._embedder.encode(texts)
        probabilities = self._model.predict_proba(texts, vectors)
        neighbours = self._memory.nearest(vectors, self._k)
        model_ms = (time.perf_counter() - started) * 1000 / max(1, len(batch))
        return [
            self._result(row, found, model_ms)
            for row, found in zip(probabilities, neighbours, strict=True)
        ]

    def _result(
        self, probabilities: NDArray[np.float64], evidence: list[Neighbour], model_ms: float
    ) -> KindResult:
        order = np.argsort(-probabilities, kind="stable")
        labels = self._model.labels
        decision = labels[order[0]]
        confidence = round(float(probabilities[order[0]]), 4)
        tie = near_tie(probabilities)
        output: dict[str, Any] = {
            DECISION: decision,
            CONFIDENCE: confidence,
            RATIONALE: build_rationale(decision, confidence, evidence),
            EVIDENCE: [citation(n, self._memory.source) for n in evidence],
        }
        if self._alternatives is not None:
            output[ALTERNATIVES] = [labels[i] for i in order[1 : 1 + self._alternatives]]
        # The run service applies review_labels to a `label` output only; a decision is ours.
        review_label = decision in self._spec.policy.review_labels
        return KindResult(
            output,
            confidence,
            model_ms,
            flags=(NEAR_TIE,) if tie else (),
            force_review=tie or review_label,
        )


def _precedents(
    spec: TaskSpec, memory: CaseMemory | None, embedder: Callable[[], MiniLMEmbedder]
) -> Callable[[Mapping[str, Any]], list[Precedent]]:
    """The nearest past cases of an input (none without a case memory)."""
    k = min(NEIGHBOURS, spec.output[EVIDENCE].max_items or NEIGHBOURS)

    def find(inputs: Mapping[str, Any]) -> list[Precedent]:
        if memory is None or not memory.cases:
            return []
        vectors = embedder().encode([input_text(spec, inputs)])
        return [
            Precedent(citation(n, memory.source), n.case.decision)
            for n in memory.nearest(vectors, k)[0]
        ]

    return find


class DecideKind:
    name = "decide"
    needs_training = True  # the offline classifier; see trains() for a chat-model route

    def __init__(
        self,
        embedder: Callable[[], MiniLMEmbedder],
        router: RouterFactory | None = None,
        *,
        local_llm: bool = False,
    ) -> None:
        self._embedder = embedder  # shared with kind classify, created on first use
        self._router = router  # None: no chat-model routes
        self._local_llm = local_llm

    def trains(self, spec: TaskSpec) -> bool:
        """A chat-model route trains only its case memory, so only with training data."""
        return not is_llm_route(spec, LOCAL_MODEL) or spec.training is not None

    def train(
        self, spec: TaskSpec, examples: Sequence[Example], out_dir: Path, progress: Progress
    ) -> dict[str, Any]:
        decisions = training_labels(spec, examples, DECISION)
        texts = [input_text(spec, ex.inputs) for ex in examples]
        embedder = self._embedder()
        progress(f"embedding {len(texts)} past cases")
        vectors = embedder.encode(texts)  # once: the classifier and the case memory share them
        source = spec.training.path if spec.training else "training data"
        cases = [
            PastCase(ex.line, text, decision)
            for ex, text, decision in zip(examples, texts, decisions, strict=True)
        ]
        memory = CaseMemory(source, cases, vectors, embedder.fingerprint)
        if is_llm_route(spec, LOCAL_MODEL):
            memory.save(out_dir)  # the chat model decides; the cases are its evidence
            return {"cases": len(cases), "neighbours": NEIGHBOURS}
        seed = spec.training.seed if spec.training else 0
        model = train_text_classifier(
            texts, decisions, embedder, seed=seed, progress=progress, embeddings=vectors
        )
        model.save(out_dir)
        memory.save(out_dir)
        # An option without a past case can never be recommended: say so in the metadata.
        unseen = sorted(set(spec.output[DECISION].values or []) - set(decisions))
        if unseen:
            progress(f"options without any training case (never recommended): {unseen}")
        extra = {"cases": len(cases), "neighbours": NEIGHBOURS, "tie_margin": TIE_MARGIN}
        return {**model.metadata(), **extra, "options_without_cases": unseen}

    def load(self, spec: TaskSpec, artifact_dir: Path | None, artifact: str | None) -> TaskRunner:
        if self.trains(spec) and artifact_dir is None:
            raise ModelNotReady(
                f"task {spec.name} v{spec.version} has no trained model; "
                f"run `shipyard train {spec.name}`"
            )
        if is_llm_route(spec, LOCAL_MODEL):
            return self._load_llm(spec, artifact_dir)
        assert artifact_dir is not None  # trains() holds for the offline route
        embedder = self._embedder()
        model = TextClassifier.load(artifact_dir, embedder)
        memory = CaseMemory.load(artifact_dir, embedder)
        return DecideRunner(spec, model, memory, embedder, artifact)

    def _load_llm(self, spec: TaskSpec, artifact_dir: Path | None) -> TaskRunner:
        if self._router is None:
            raise ConfigError(f"task {spec.name}: no chat-model router is available")
        memory = None if artifact_dir is None else CaseMemory.load(artifact_dir, self._embedder())
        return LLMDecideRunner(
            spec,
            self._router,
            options=spec.output[DECISION].values or [],
            precedents=_precedents(spec, memory, self._embedder),
            local_llm=self._local_llm,
        )
