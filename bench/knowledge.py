"""Knowledge ingestion throughput and search latency at scale, on SQLite and PostgreSQL.

Ingestion: ``--docs`` Markdown documents, each 1-4 SQuAD passages (corpus.jsonl of the
knowledge-assistant example) under varied headings, go through the real pipeline: one
``IngestionService.submit``, then ``process`` for each document (parse, chunk, embed with
MiniLM, index), in a fresh database. Printed: documents/s, chunks/s, and the share of the time
spent inside the embedder (timed by wrapping the container's embedder).

Search: for each size in ``--sizes`` (chunks) a fresh database is filled directly through
``KnowledgeIndex.replace_document`` (1-6 chunks per document, ``--batch-docs`` documents per
transaction), because embedding 100k chunks with MiniLM would take hours on this machine:

- chunk text: the sentences of a random SQuAD passage, rotated, sometimes one dropped, plus one
  sentence of another passage, so BM25 sees real vocabulary and document frequencies;
- embedding: the real MiniLM embedding of the base passage (article title + text, as ingestion
  embeds title + chunk) plus Gaussian noise (sigma 0.02 per dimension, cosine ~0.93 to
  the original), re-normalised. So the vector space has the structure of real embeddings, with
  ~N/1245 noisy near-duplicates around each passage. This is what keeps the 100k build to
  minutes: no chunk is embedded, only the 1,245 passages once (cached in ``--cache-dir``).

5 % of the documents carry only the group ``restricted``, the others ``everyone``; matching
``documents`` rows are added with one bulk insert so the full ``KnowledgeService.retrieve``
path works too. Queries are ``--queries`` SQuAD dev questions (their MiniLM embeddings are
computed once). Each timed query opens its own session, as a request does. Modes:

- keyword: ``index.keyword_search`` k=50 (the candidates of a hybrid search);
- dense: ``index.dense_search`` k=50; "recall" is the overlap with the exact top 50 computed
  with numpy from the same vectors (1.0 means exact; PostgreSQL uses HNSW);
- hybrid: ``retrieval.search`` k=5 with 50 candidates per retriever (both of the above + RRF);
- dense 5% / keyword 5%: the same with scope groups {restricted} (~5 % of the chunks): the
  PostgreSQL HNSW path then finds too few rows and re-runs as an exact filtered scan;
- retrieve: ``KnowledgeService.retrieve`` hybrid k=5, including the query embedding and the
  document lookup.

PostgreSQL runs on pgserver (pgvector) with its default settings; ``ANALYZE`` runs after each
build. SQLite's first dense query after a write loads the collection's vectors into memory:
that cold query is reported separately ("cold dense").

    .venv/bin/python bench/knowledge.py [--sizes 10000,100000] [--backends sqlite,postgres]
        [--queries 200] [--docs 200]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import func, insert, select, text
from sqlalchemy.engine import make_url

from shipyard.access.principal import Principal
from shipyard.access.roles import Role
from shipyard.bootstrap import Container, build
from shipyard.knowledge.retrieval import SearchRequest, search
from shipyard.knowledge.sentences import split_sentences
from shipyard.knowledge.types import Chunk, DocumentRef, Hit, Scope
from shipyard.providers.local.embedder import MiniLMEmbedder
from shipyard.services.ingestion import Upload
from shipyard.settings import Settings
from shipyard.storage.tables import Document

PROJECT = Path("examples/knowledge-assistant")
DEV = Path("/work/shared/data/squad_rag/dev.jsonl")
COLLECTION = "bench"
NOISE_SIGMA = 0.02
RESTRICTED_SHARE = 0.05
CANDIDATES = 50
WARMUP = 10
HEADINGS = (
    "Overview",
    "Background",
    "History",
    "Details",
    "Key facts",
    "Notes",
    "Summary",
    "Context",
    "Frequently asked questions",
    "Further reading",
    "Early period",
    "Modern era",
    "Policy",
    "Procedure",
    "Reference",
)


# -- data --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Passage:
    title: str  # the article name, without the "(n)" suffix
    text: str
    sentences: tuple[str, ...]


def load_passages(project: Path) -> list[Passage]:
    passages = []
    with (project / "data" / "corpus.jsonl").open(encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            body = record["text"]
            sentences = tuple(body[s:e] for s, e in split_sentences(body)) or (body,)
            title = record.get("title") or record["source"]
            passages.append(Passage(title.rsplit(" (", 1)[0], body, sentences))
    return passages


def passage_embeddings(
    passages: Sequence[Passage], embedder: MiniLMEmbedder, cache_dir: Path
) -> NDArray[np.float32]:
    """MiniLM embeddings of "title\\ntext" per passage, cached by content in ``cache_dir``."""
    texts = [f"{p.title}\n{p.text}" for p in passages]
    digest = hashlib.sha256("\x00".join(texts).encode()).hexdigest()[:16]
    path = cache_dir / f"shipyard-bench-minilm-{digest}.npy"
    if path.exists():
        return np.asarray(np.load(path), dtype=np.float32)
    started = time.perf_counter()
    vectors = embedder.encode(texts)
    print(f"embedded {len(texts)} passages in {time.perf_counter() - started:.0f} s -> {path}")
    np.save(path, vectors)
    return vectors


def markdown_documents(passages: Sequence[Passage], count: int, seed: int) -> list[Upload]:
    """``count`` Markdown uploads of 1-4 passages each under varied headings and layouts."""
    rng = random.Random(seed)
    uploads = []
    for number in range(count):
        picked = rng.sample(range(len(passages)), rng.randint(1, 4))
        title = passages[picked[0]].title
        parts = [f"# {title}\n"]
        for position, index in enumerate(picked):
            passage = passages[index]
            level = "##" if position == 0 or rng.random() < 0.7 else "###"
            heading = rng.choice((*HEADINGS, passage.title))
            parts.append(f"{level} {heading}\n")
            layout = rng.random()
            if layout < 0.15 and len(passage.sentences) > 2:
                parts.append("\n".join(f"- {s}" for s in passage.sentences) + "\n")
            elif layout < 0.4 and len(passage.sentences) > 3:
                half = len(passage.sentences) // 2
                parts.append(" ".join(passage.sentences[:half]) + "\n")
                parts.append(f"**Note.** {' '.join(passage.sentences[half:])}\n")
            else:
                parts.append(passage.text + "\n")
        uploads.append(
            Upload(
                source=f"handbook/doc-{number:05d}.md",
                content="\n".join(parts).encode(),
                title=title,
                groups=frozenset({"restricted"} if rng.random() < 0.1 else ()),
            )
        )
    return uploads


@dataclass
class Synthetic:
    """One scale corpus: documents with their chunks and vectors, and the exact ground truth."""

    documents: list[tuple[DocumentRef, list[Chunk], str]]  # ref, chunks, title
    keys: list[tuple[str, int]]  # (document_id, chunk_index) per vector row
    vectors: NDArray[np.float32]  # rows of norm 1
    restricted: NDArray[np.bool_]  # per vector row


def synthetic_corpus(
    passages: Sequence[Passage],
    embeddings: NDArray[np.float32],
    size: int,
    tenant_id: str,
    collection_id: str,
    seed: int,
) -> Synthetic:
    """``size`` chunks in documents of 1-6 chunks, built from perturbed SQuAD passages."""
    rng = random.Random(seed)
    noise = np.random.default_rng(seed)
    documents: list[tuple[DocumentRef, list[Chunk], str]] = []
    bases: list[int] = []
    keys: list[tuple[str, int]] = []
    restricted: list[bool] = []
    while len(bases) < size:
        document_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        secret = rng.random() < RESTRICTED_SHARE
        groups = frozenset({"restricted" if secret else "everyone"})
        chunks: list[Chunk] = []
        offset = 0
        for index in range(min(rng.randint(1, 6), size - len(bases))):
            base = rng.randrange(len(passages))
            sentences = list(passages[base].sentences)
            turn = rng.randrange(len(sentences))
            sentences = sentences[turn:] + sentences[:turn]
            if len(sentences) > 2 and rng.random() < 0.5:
                del sentences[rng.randrange(len(sentences))]
            sentences.append(rng.choice(passages[rng.randrange(len(passages))].sentences))
            body = " ".join(sentences)
            heading = rng.choice((None, *HEADINGS))
            chunks.append(Chunk(index, body, offset, offset + len(body), heading))
            offset += len(body) + 2
            bases.append(base)
            keys.append((document_id, index))
            restricted.append(secret)
        ref = DocumentRef(tenant_id, collection_id, document_id, groups)
        documents.append((ref, chunks, passages[bases[-1]].title))
    vectors = embeddings[np.asarray(bases)] + noise.normal(
        0.0, NOISE_SIGMA, (size, embeddings.shape[1])
    ).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return Synthetic(documents, keys, vectors.astype(np.float32), np.asarray(restricted))


# -- databases ---------------------------------------------------------------------------


class Databases:
    """Fresh database URLs: SQLite files, or databases on one pgserver PostgreSQL."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._server: Any = None

    def url(self, backend: str, name: str) -> str:
        if backend == "sqlite":
            return f"sqlite:///{self.root / (name + '.db')}"
        if self._server is None:
            import pgserver

            self._server = pgserver.get_server(  # type: ignore[attr-defined]
                self.root / "pgdata", cleanup_mode="stop"
            )
        self._server.psql(f"CREATE DATABASE {name};")
        uri = make_url(self._server.get_uri()).set(database=name)
        return uri.render_as_string(hide_password=False)

    def close(self) -> None:
        if self._server is not None:
            self._server.cleanup()


def open_container(url: str, state: Path, project: Path) -> tuple[Container, Principal, str]:
    """Container on ``url`` with the default tenant's admin and a new collection's id."""
    container = build(
        Settings(
            project_dir=project,
            data_dir=state,
            database_url=url,
            secret_key="bench-secret-key-" + "x" * 32,
        )
    )
    container.upgrade_database()
    tenant = container.access.ensure_tenant(container.project.config.default_tenant)
    principal = Principal(tenant.id, tenant.slug, None, "bench", frozenset({Role.ADMIN}))
    collection = container.knowledge.create_collection(principal, COLLECTION)
    return container, principal, collection.id


# -- ingestion ---------------------------------------------------------------------------


class TimedEncoder:
    """Wraps the embedder to count the time ingestion spends embedding."""

    def __init__(self, inner: MiniLMEmbedder) -> None:
        self.inner = inner
        self.seconds = 0.0

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> NDArray[np.float32]:
        started = time.perf_counter()
        try:
            return self.inner.encode(texts, batch_size)
        finally:
            self.seconds += time.perf_counter() - started


def ingestion(container: Container, principal: Principal, uploads: Sequence[Upload]) -> str:
    """Submit and process ``uploads``; the printed line of figures."""
    timed = TimedEncoder(container.embedder())
    timed.encode(["warm up"])
    timed.seconds = 0.0
    container._embedder = timed  # type: ignore[assignment]  # ingestion asks the container
    started = time.perf_counter()
    _, results = container.ingestion.submit(principal, COLLECTION, uploads)
    submitted = time.perf_counter() - started
    outcomes: dict[str, int] = {}
    for result in results:
        if result.status == "queued" and result.document_id:
            status = container.ingestion.process(principal.tenant_id, result.document_id)
            outcomes[status] = outcomes.get(status, 0) + 1
    seconds = time.perf_counter() - started
    container._embedder = timed.inner
    with container.sessions() as session:
        chunks = session.execute(
            select(func.sum(Document.chunk_count)).where(Document.tenant_id == principal.tenant_id)
        ).scalar_one()
    return (
        f"{len(uploads)} docs -> {chunks} chunks in {seconds:.1f} s: "
        f"{len(uploads) / seconds:.2f} docs/s, {chunks / seconds:.2f} chunks/s "
        f"(submit {submitted:.1f} s, embedding {timed.seconds / seconds:.0%} of the time); "
        f"{outcomes}"
    )


# -- search at scale ---------------------------------------------------------------------


def fill(container: Container, corpus: Synthetic, batch_docs: int) -> float:
    """Write the corpus through ``replace_document`` plus bulk ``documents`` rows; seconds."""
    index = container.knowledge_index
    started = time.perf_counter()
    row = 0
    now = datetime.now(UTC)
    for start in range(0, len(corpus.documents), batch_docs):
        batch = corpus.documents[start : start + batch_docs]
        with container.sessions.begin() as session:
            session.execute(
                insert(Document),
                [
                    {
                        "id": ref.document_id,
                        "tenant_id": ref.tenant_id,
                        "collection_id": ref.collection_id,
                        "source": f"synthetic/{ref.document_id}",
                        "title": title,
                        "media_type": "text/plain",
                        "content_sha256": hashlib.sha256(ref.document_id.encode()).hexdigest(),
                        "size_bytes": sum(len(c.text) for c in chunks),
                        "groups": sorted(ref.groups),
                        "meta": {},
                        "status": "indexed",
                        "chunk_count": len(chunks),
                        "flags": [],
                        "created_at": now,
                        "updated_at": now,
                        "indexed_at": now,
                    }
                    for ref, chunks, title in batch
                ],
            )
            for ref, chunks, _ in batch:
                index.replace_document(
                    session, ref, chunks, corpus.vectors[row : row + len(chunks)]
                )
                row += len(chunks)
    if container.engine.dialect.name == "postgresql":
        # Planner statistics, as autovacuum would collect them later. In a transaction that
        # commits: ANALYZE's statistics roll back with the transaction that computed them.
        with container.engine.begin() as connection:
            connection.execute(text("ANALYZE"))
    return time.perf_counter() - started


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


Run = Callable[[int], Sequence[Any]]


@dataclass
class Timing:
    """Per-query figures of one mode on one backend and size."""

    mode: str
    latencies: list[float]
    hits: list[int]
    recall: list[float]
    leaks: int


def exact_top(
    corpus: Synthetic, vector: NDArray[np.float32], restricted_only: bool, k: int
) -> set[tuple[str, int]]:
    """The true best ``k`` (document_id, chunk_index) by cosine, for dense recall."""
    scores = corpus.vectors @ vector
    if restricted_only:
        scores = np.where(corpus.restricted, scores, -np.inf)
    best = np.argpartition(-scores, k - 1)[:k]
    return {corpus.keys[i] for i in best if np.isfinite(scores[i])}


def measure(
    container: Container,
    principal: Principal,
    collection_id: str,
    corpus: Synthetic,
    queries: Sequence[str],
    vectors: NDArray[np.float32],
) -> tuple[list[Timing], float]:
    """Latency of every mode over ``queries``; also the first (cold) dense query's ms."""
    index = container.knowledge_index
    everything = Scope(principal.tenant_id, (collection_id,), frozenset({"everyone", "restricted"}))
    restricted = Scope(principal.tenant_id, (collection_id,), frozenset({"restricted"}))
    restricted_docs = {
        ref.document_id for ref, _, _ in corpus.documents if "restricted" in ref.groups
    }

    def in_session(call: Callable[[Any, int], Sequence[Any]]) -> Run:
        def run(i: int) -> Sequence[Any]:
            with container.sessions() as session:
                return call(session, i)

        return run

    modes: dict[str, tuple[Run, Scope | None]] = {
        "keyword": (
            in_session(lambda s, i: index.keyword_search(s, everything, queries[i], CANDIDATES)),
            None,
        ),
        "dense": (
            in_session(lambda s, i: index.dense_search(s, everything, vectors[i], CANDIDATES)),
            everything,
        ),
        "hybrid": (
            in_session(
                lambda s, i: search(
                    index, s, SearchRequest(everything, queries[i], vectors[i], 5, CANDIDATES)
                )
            ),
            None,
        ),
        "keyword 5%": (
            in_session(lambda s, i: index.keyword_search(s, restricted, queries[i], CANDIDATES)),
            None,
        ),
        "dense 5%": (
            in_session(lambda s, i: index.dense_search(s, restricted, vectors[i], CANDIDATES)),
            restricted,
        ),
        "retrieve": (
            lambda i: container.knowledge.retrieve(
                principal.tenant_id,
                everything.groups,
                [COLLECTION],
                queries[i],
                k=5,
                mode="hybrid",
            ),
            None,
        ),
    }
    started = time.perf_counter()
    modes["dense"][0](0)
    cold = (time.perf_counter() - started) * 1000
    timings = []
    for mode, (run, dense_scope) in modes.items():
        for i in range(min(WARMUP, len(queries))):
            run(i)
        timing = Timing(mode, [], [], [], 0)
        for i in range(len(queries)):
            started = time.perf_counter()
            found = run(i)
            timing.latencies.append((time.perf_counter() - started) * 1000)
            hits: list[Hit] = [item if isinstance(item, Hit) else item.hit for item in found]
            timing.hits.append(len(hits))
            if mode.endswith("5%"):  # a hit outside the restricted documents is a leak
                timing.leaks += sum(hit.document_id not in restricted_docs for hit in hits)
            if dense_scope is not None:
                exact = exact_top(corpus, vectors[i], dense_scope is restricted, CANDIDATES)
                got = {(hit.document_id, hit.chunk_index) for hit in hits}
                timing.recall.append(len(got & exact) / max(1, len(exact)))
        timings.append(timing)
    return timings, cold


def postgres_sizes(container: Container) -> str:
    with container.engine.connect() as connection:
        table, hnsw = connection.execute(
            text(
                "SELECT pg_size_pretty(pg_total_relation_size('kb_chunks')), "
                "pg_size_pretty(pg_relation_size('ix_kb_chunks_embedding'))"
            )
        ).one()
    return f"kb_chunks with indexes {table}, HNSW index {hnsw}"


# -- main --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Inputs:
    """What every backend's run shares."""

    project: Path
    root: Path
    passages: list[Passage]
    embeddings: NDArray[np.float32]
    uploads: list[Upload]
    queries: list[str]
    query_vectors: NDArray[np.float32]
    seed: int
    batch_docs: int


def run_backend(
    backend: str, sizes: Sequence[int], databases: Databases, inputs: Inputs
) -> list[tuple[str, int, Timing]]:
    """Ingestion, then a build and the searches per size, on one backend."""
    name = f"ingest_{backend}"
    url = databases.url(backend, name)
    container, principal, _ = open_container(url, inputs.root / name, inputs.project)
    try:
        print(f"\n[{backend}] ingestion: {ingestion(container, principal, inputs.uploads)}")
    finally:
        container.close()
    results: list[tuple[str, int, Timing]] = []
    for size in sizes:
        name = f"scale_{backend}_{size}"
        url = databases.url(backend, name)
        container, principal, collection_id = open_container(
            url, inputs.root / name, inputs.project
        )
        try:
            corpus = synthetic_corpus(
                inputs.passages,
                inputs.embeddings,
                size,
                principal.tenant_id,
                collection_id,
                inputs.seed + size,
            )
            seconds = fill(container, corpus, inputs.batch_docs)
            extra = f"; {postgres_sizes(container)}" if backend == "postgres" else ""
            print(
                f"[{backend}] build {size} chunks ({len(corpus.documents)} documents, "
                f"{corpus.restricted.mean():.1%} restricted): {seconds:.1f} s, "
                f"{size / seconds:.0f} chunks/s{extra}"
            )
            timings, cold = measure(
                container, principal, collection_id, corpus, inputs.queries, inputs.query_vectors
            )
            print(f"[{backend}] {size} chunks: first (cold) dense query {cold:.0f} ms")
            results.extend((backend, size, timing) for timing in timings)
        finally:
            container.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--project", type=Path, default=PROJECT)
    parser.add_argument("--sizes", default="10000,100000", help="chunks per scale test")
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--docs", type=int, default=200, help="documents for ingestion")
    parser.add_argument("--batch-docs", type=int, default=500, help="documents per transaction")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--cache-dir", type=Path, default=Path(tempfile.gettempdir()))
    args = parser.parse_args()
    run_started = time.perf_counter()
    project = args.project.resolve()
    passages = load_passages(project)
    embedder = MiniLMEmbedder()
    with DEV.open(encoding="utf-8") as handle:
        questions = [json.loads(line)["question"] for line in handle]
    queries = random.Random(args.seed).sample(questions, args.queries)
    root = Path(tempfile.mkdtemp(prefix="kb-bench-"))
    inputs = Inputs(
        project=project,
        root=root,
        passages=passages,
        embeddings=passage_embeddings(passages, embedder, args.cache_dir),
        uploads=markdown_documents(passages, args.docs, args.seed),
        queries=queries,
        query_vectors=embedder.encode(queries),
        seed=args.seed,
        batch_docs=args.batch_docs,
    )
    print(
        f"knowledge bench, {os.cpu_count()} cores; {args.queries} queries (SQuAD dev questions);"
        f" synthetic vectors = passage MiniLM embedding + N(0, {NOISE_SIGMA}^2) noise"
    )
    databases = Databases(root)
    results: list[tuple[str, int, Timing]] = []
    try:
        for backend in (b for b in args.backends.split(",") if b):
            sizes = [int(size) for size in args.sizes.split(",") if size]
            results.extend(run_backend(backend, sizes, databases, inputs))
    finally:
        databases.close()
        shutil.rmtree(root, ignore_errors=True)

    print(
        f"\n{'backend':<9} {'chunks':>7} {'mode':<11} {'p50 ms':>8} {'p95 ms':>8} "
        f"{'hits':>5} {'recall':>6} {'leaks':>5}"
    )
    for backend, size, timing in results:
        recall = f"{statistics.fmean(timing.recall):.3f}" if timing.recall else "-"
        leaks = str(timing.leaks) if timing.mode.endswith("5%") else "-"
        print(
            f"{backend:<9} {size:>7} {timing.mode:<11} {percentile(timing.latencies, 0.5):>8.1f} "
            f"{percentile(timing.latencies, 0.95):>8.1f} {min(timing.hits):>5} {recall:>6} "
            f"{leaks:>5}"
        )
    print("hits = fewest hits returned by any query; recall = overlap with the exact top 50")
    print(f"total run time {time.perf_counter() - run_started:.0f} s")


if __name__ == "__main__":
    main()
