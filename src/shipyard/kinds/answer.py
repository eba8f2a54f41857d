"""Kind ``answer``: retrieve from the task's collections, then answer with citations.

Offline the answer is extractive: the best-supported sentences of the retrieved passages,
quoted verbatim, each with a citation to its document, chunk and character offsets. When the
evidence is too weak the run abstains (``answerable: false``) and goes to review. Retrieved
text is only ever quoted, never followed; passages that read like instructions to a model
are flagged on the run (with the task's ``injection: block``, left out: see grounding.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from shipyard.errors import FieldProblem, InvalidInput
from shipyard.kinds import grounding
from shipyard.kinds.base import Example, KindResult, Progress, RunContext, TaskRunner
from shipyard.knowledge.encoding_cache import CachingEncoder
from shipyard.knowledge.extractive import (
    ExtractiveOptions,
    SentenceEncoder,
    answer_question,
)
from shipyard.knowledge.types import Passage
from shipyard.spec import KnowledgeSpec, TaskSpec

Retrieve = Callable[[RunContext, KnowledgeSpec, str], list[Passage]]
QUESTION_FIELD = "question"
MODEL_NAME = "extractive-minilm-hybrid"
MAX_QUESTION_CHARS = 2000  # the search's own query limit


class AnswerRunner:
    def __init__(
        self,
        spec: TaskSpec,
        retrieve: Retrieve,
        encoder: Callable[[], SentenceEncoder],
    ) -> None:
        assert spec.knowledge is not None  # the spec model requires it for this kind
        self._spec = spec
        self._knowledge = spec.knowledge
        self._retrieve = retrieve
        self._encoder = CachingEncoder(encoder)
        self._options = ExtractiveOptions(
            max_sentences=spec.knowledge.max_sentences,
            abstain_below=spec.knowledge.abstain_below,
            passages=spec.knowledge.top_k,
        )
        self._outputs = frozenset(spec.output)

    @property
    def model_name(self) -> str:
        return MODEL_NAME

    @property
    def artifact(self) -> str | None:
        return None

    def run(self, inputs: Mapping[str, Any], context: RunContext | None = None) -> KindResult:
        if context is None:
            raise InvalidInput("an answer task runs for a caller: tenant and groups are needed")
        started = time.perf_counter()
        question = str(inputs[QUESTION_FIELD])
        if not question.strip() or len(question) > MAX_QUESTION_CHARS:
            raise InvalidInput(
                "invalid question",
                [FieldProblem(f"input.{QUESTION_FIELD}", f"1-{MAX_QUESTION_CHARS} characters")],
            )
        passages, injection = grounding.screen_passages(
            self._spec, self._retrieve(context, self._knowledge, question)
        )
        result = answer_question(
            question, [passage.hit for passage in passages], self._encoder, self._options
        )
        by_chunk = {passage.hit.chunk_id: passage for passage in passages}
        citations = [
            {
                "document_id": evidence.hit.document_id,
                "source": by_chunk[evidence.hit.chunk_id].source,
                "title": by_chunk[evidence.hit.chunk_id].title,
                "chunk": evidence.hit.chunk_index,
                "quote": evidence.quote,
                "start": evidence.start,
                "end": evidence.end,
            }
            for evidence in result.evidence
        ]
        output: dict[str, Any] = {
            "answer": result.answer,
            "answerable": result.answerable,
            "citations": citations,
            "confidence": round(result.confidence, 6),
        }
        return KindResult(
            output={name: value for name, value in output.items() if name in self._outputs},
            confidence=round(result.confidence, 6),
            model_ms=(time.perf_counter() - started) * 1000,
            flags=injection,
            force_review=not result.answerable,
        )

    def run_many(
        self, batch: Sequence[Mapping[str, Any]], context: RunContext | None = None
    ) -> list[KindResult]:
        return [self.run(inputs, context) for inputs in batch]


class AnswerKind:
    name = "answer"
    needs_training = False

    def __init__(self, retrieve: Retrieve, encoder: Callable[[], SentenceEncoder]) -> None:
        self._retrieve = retrieve
        self._encoder = encoder

    def train(
        self, spec: TaskSpec, examples: Sequence[Example], out_dir: Path, progress: Progress
    ) -> dict[str, Any]:
        raise InvalidInput("kind answer has nothing to train: ingest documents instead")

    def load(self, spec: TaskSpec, artifact_dir: Path | None, artifact: str | None) -> TaskRunner:
        return AnswerRunner(spec, self._retrieve, self._encoder)
