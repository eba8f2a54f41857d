"""Retrieval and answer quality of the knowledge-assistant example (SQuAD passages).

Builds the example in a fresh temporary state directory with SQLite, creates the collection
``wiki`` and ingests all 1,245 passages of ``data/corpus.jsonl`` through the real pipeline
(submit, then process each queued document: parse, chunk, embed, index); prints docs/s.

Retrieval: every answerable question of ``data/eval.jsonl`` (and with ``--all-dev`` every
answerable question of the SQuAD dev split in /work/shared/data/squad_rag) is searched with
``KnowledgeService.retrieve`` as the evaluation does (groups everyone + clinical) in the
modes dense, keyword (BM25) and hybrid. The gold is the question's passage (``Passage.source``);
rankings are lists of chunks, as the answerer sees them. One k=10 search per question and mode
gives recall@1, recall@5 (its first 5 hits: for a fixed query the k=5 list is the prefix of
the k=10 list, which the script checks on the first questions) and MRR@10. Latency is the
median wall time of that call, including the query embedding for dense and hybrid.

Answers: the task ``ask-wiki`` is evaluated on ``data/eval.jsonl`` through
``EvaluationService.evaluate``; its metrics are printed, then abstention precision and recall
at other ``abstain_below`` thresholds, recomputed from the confidences of its cases.

    .venv/bin/python bench/knowledge_quality.py [--limit N] [--all-dev]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from sqlalchemy import func, select

from shipyard.access.principal import Principal
from shipyard.access.roles import Role
from shipyard.bootstrap import Container, build
from shipyard.evaluation.metrics.answer import mean_reciprocal_rank, recall_at_k
from shipyard.services.ingestion import Upload
from shipyard.settings import Settings
from shipyard.storage.tables import Document

COLLECTION = "wiki"
GROUPS = frozenset({"everyone", "clinical"})  # what ask-wiki's evaluation retrieves with
MODES = ("dense", "keyword", "hybrid")
DEV = Path("/work/shared/data/squad_rag/dev.jsonl")
PREFIX_CHECKS = 25  # questions per mode on which k=5 is compared with the top 5 of k=10
THRESHOLDS = (0.0, 0.2, 0.25, 0.3, 0.325, 0.35, 0.4, 0.45, 0.5, 0.6)


@dataclass(frozen=True)
class Question:
    text: str
    passage_id: str


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def build_container(project: Path, state: Path) -> tuple[Container, Principal]:
    """A container on a new SQLite database in ``state``, with the default tenant's admin."""
    container = build(
        Settings(
            project_dir=project,
            data_dir=state,
            database_url=f"sqlite:///{state / 'bench.db'}",
            secret_key="bench-secret-key-" + "x" * 32,
        )
    )
    container.upgrade_database()
    tenant = container.access.ensure_tenant(container.project.config.default_tenant)
    principal = Principal(tenant.id, tenant.slug, None, "bench", frozenset({Role.ADMIN}))
    return container, principal


def ingest(container: Container, principal: Principal, corpus: Path) -> None:
    """Create the collection and index every record of ``corpus``; print the throughput."""
    records = read_jsonl(corpus)
    uploads = [
        Upload(
            source=record["source"],
            content=record["text"].encode(),
            media_type="text/plain",
            title=record.get("title"),
            groups=frozenset(record.get("groups") or ()),
        )
        for record in records
    ]
    container.knowledge.create_collection(principal, COLLECTION)
    container.embedder().load()  # model load is start-up cost, not ingestion
    started = time.perf_counter()
    _, results = container.ingestion.submit(principal, COLLECTION, uploads)
    submitted = time.perf_counter() - started
    statuses: dict[str, int] = {}
    for result in results:
        if result.status == "queued" and result.document_id:
            status = container.ingestion.process(principal.tenant_id, result.document_id)
            statuses[status] = statuses.get(status, 0) + 1
    seconds = time.perf_counter() - started
    with container.sessions() as session:
        chunks = session.execute(
            select(func.sum(Document.chunk_count)).where(Document.tenant_id == principal.tenant_id)
        ).scalar_one()
    print(
        f"ingestion (SQLite): {len(uploads)} documents -> {chunks} chunks in {seconds:.1f} s "
        f"(submit {submitted:.1f} s): {len(uploads) / seconds:.1f} docs/s, "
        f"{chunks / seconds:.1f} chunks/s; outcomes {statuses}"
    )


def retrieval(
    container: Container, tenant_id: str, questions: Sequence[Question], label: str
) -> None:
    """Print recall@1, recall@5, MRR@10 and median latency per mode for ``questions``."""
    gold = [{question.passage_id} for question in questions]
    print(f"\nretrieval on {label}: {len(questions)} answerable questions, gold = its passage")
    header = f"{'mode':<8} {'R@1':>6} {'R@5':>6} {'MRR@10':>7} {'p50 ms':>7} {'p95 ms':>7}"
    print(f"{header}  k=5 = top 5 of k=10")
    for mode in MODES:
        ranked: list[list[str]] = []
        latencies: list[float] = []
        for question in questions:
            started = time.perf_counter()
            passages = container.knowledge.retrieve(
                tenant_id, GROUPS, [COLLECTION], question.text, k=10, mode=mode
            )
            latencies.append((time.perf_counter() - started) * 1000)
            ranked.append([passage.source for passage in passages])
        same = 0
        checked = questions[:PREFIX_CHECKS]
        for question, top10 in zip(checked, ranked, strict=False):
            top5 = container.knowledge.retrieve(
                tenant_id, GROUPS, [COLLECTION], question.text, k=5, mode=mode
            )
            same += [passage.source for passage in top5] == top10[:5]
        latencies.sort()
        print(
            f"{mode:<8} {recall_at_k(gold, ranked, 1):>6.3f} {recall_at_k(gold, ranked, 5):>6.3f} "
            f"{mean_reciprocal_rank(gold, ranked, 10):>7.3f} {statistics.median(latencies):>7.1f} "
            f"{latencies[int(0.95 * (len(latencies) - 1))]:>7.1f}  {same}/{len(checked)}"
        )


def answers(container: Container, dataset: Path | None) -> list[dict[str, Any]]:
    """Evaluate ask-wiki; print its metrics and return its cases."""
    started = time.perf_counter()
    report = container.evaluations.evaluate("ask-wiki", dataset=dataset, actor="bench")
    seconds = time.perf_counter() - started
    metrics = report["metrics"]
    rows = report["dataset"]["rows"]
    print(f"\nask-wiki evaluation: {rows} questions in {seconds:.1f} s ({rows / seconds:.1f} q/s)")
    for name in (
        "token_f1",
        "exact_match",
        "answer_recall",
        "answered_accuracy",
        "abstain_precision",
        "abstain_recall",
        "abstain_f1",
        "coverage",
        "citation_recall",
    ):
        value = metrics.get(name)
        print(f"  {name:<18} {'n/a' if value is None else f'{value:.3f}'}")
    print(f"  details            {report['details']}")
    return list(report["cases"])


def abstention_sweep(cases: Sequence[dict[str, Any]], configured: float) -> None:
    """Abstention precision/recall if the task abstained below each threshold instead."""
    unanswerable = [not case["expected"].get("answerable") for case in cases]
    confidences = [float(case["confidence"] or 0.0) for case in cases]
    total_unanswerable = sum(unanswerable)
    total_answerable = len(cases) - total_unanswerable
    print(f"\nabstention by abstain_below (configured {configured}), from the cases' confidences")
    header = f"{'below':>6} {'abstained':>9} {'precision':>9} {'recall':>7} {'f1':>6}"
    print(f"{header} {'answ. kept':>10}")
    for threshold in THRESHOLDS:
        declined = [confidence < threshold for confidence in confidences]
        hits = sum(d and u for d, u in zip(declined, unanswerable, strict=True))
        abstained = sum(declined)
        kept = sum(not d and not u for d, u in zip(declined, unanswerable, strict=True))
        precision = hits / abstained if abstained else 0.0
        recall = hits / total_unanswerable if total_unanswerable else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        print(
            f"{threshold:>6.3f} {abstained:>9} {precision:>9.3f} {recall:>7.3f} {f1:>6.3f} "
            f"{kept / max(1, total_answerable):>10.3f}"
        )
    print("  (answ. kept = share of answerable questions still answered)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--project", type=Path, default=Path("examples/knowledge-assistant"))
    parser.add_argument("--limit", type=int, default=None, help="cap questions per dataset")
    parser.add_argument(
        "--all-dev", action="store_true", help=f"also every answerable question of {DEV}"
    )
    args = parser.parse_args()
    run_started = time.perf_counter()
    project = args.project.resolve()
    data = project / "data"
    state = Path(tempfile.mkdtemp(prefix="kq-bench-"))
    container, principal = build_container(project, state)
    try:
        print(f"knowledge quality, {project.name}, {os.cpu_count()} cores, state in {state}")
        ingest(container, principal, data / "corpus.jsonl")

        eval_rows = read_jsonl(data / "eval.jsonl")[: args.limit]
        eval_questions = [
            Question(row["question"], row["passage_id"]) for row in eval_rows if row["answerable"]
        ]
        retrieval(container, principal.tenant_id, eval_questions, "eval.jsonl")
        if args.all_dev:
            dev_rows = [row for row in read_jsonl(DEV) if row["is_answerable"]][: args.limit]
            dev_questions = [Question(row["question"], row["passage_id"]) for row in dev_rows]
            retrieval(container, principal.tenant_id, dev_questions, "SQuAD dev (all)")

        dataset = None
        if args.limit is not None:
            dataset = state / "eval-limited.jsonl"
            dataset.write_text("".join(json.dumps(row) + "\n" for row in eval_rows))
        cases = answers(container, dataset)
        knowledge = container.project.task("ask-wiki").knowledge
        assert knowledge is not None
        abstention_sweep(cases, knowledge.abstain_below)
    finally:
        container.close()
        shutil.rmtree(state, ignore_errors=True)
    print(f"\ntotal run time {time.perf_counter() - run_started:.0f} s")


if __name__ == "__main__":
    main()
