"""One contract for both knowledge indexes: SQLite (FTS5 + in-memory matrix) and PostgreSQL
(full-text search + pgvector HNSW), with real MiniLM embeddings on a small fixed corpus."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from shipyard.knowledge.index import KnowledgeIndex
from shipyard.knowledge.indexes import make_index
from shipyard.knowledge.types import Chunk, DocumentRef, Hit, Scope
from shipyard.providers.local import MiniLMEmbedder
from shipyard.storage import migrate
from shipyard.storage.db import SessionFactory, make_engine, make_session_factory

_CORPUS_TEXT = """
lighthouse: The Skerry Point lighthouse was built in 1871 from island granite. Its lamp rotates
every twelve seconds. The last keeper left in 1989 when the light was automated.
sourdough: A sourdough starter is a culture of wild yeast and bacteria kept alive in flour and
water. Bakers feed it daily. A lively starter doubles in volume within six hours.
penguins: Emperor penguins breed on the sea ice during the Antarctic winter. The male keeps the egg
on his feet for two months without eating.
tax: Freelancers must make quarterly estimated tax payments when they expect to owe more than a
thousand dollars. A missed deadline brings an underpayment penalty charged as interest.
volcano: Mount Tambora erupted in April 1815, the largest eruption in recorded history. Its ash
cooled the northern hemisphere, and 1816 became the year without a summer.
chess: In chess, castling moves the king two squares toward a rook and puts the rook beside it. It
is not allowed while the king is in check.
bees: Honey bees tell hive mates where flowers are with the waggle dance. The angle of the dance
shows the direction relative to the sun.
password: To reset your company password, open the self-service portal and choose Forgot password.
A verification code is sent to your phone. New passwords need fourteen characters.
espresso: Espresso is brewed by forcing hot water through finely ground coffee at nine bars of
pressure. A shot takes about thirty seconds. The golden foam on top is called crema.
train: The night train from Vienna to Venice leaves at nine in the evening. Sleeper cabins hold up
to three passengers.
octopus: Octopuses have three hearts and blue blood. Two hearts pump blood through the gills while
the third supplies the rest of the body.
apollo: The Apollo 11 lunar module landed in the Sea of Tranquility in July 1969. Armstrong and
Aldrin walked on the surface for about two and a half hours.
glacier: Glaciers form where more snow falls in winter than melts in summer. The snow compacts into
blue ice that flows downhill. Retreating glaciers leave moraines of rock behind.
printer: If the office printer reports a paper jam, open the rear tray and pull the sheet out
gently. Never use scissors inside the printer. Call the help desk if the jam light stays on.
"""
# One paragraph per topic, "key: text"; each sentence becomes one chunk.
CORPUS = dict(
    " ".join(p.split()).split(": ", 1) for p in re.split(r"\n(?=[a-z]+: )", _CORPUS_TEXT.strip())
)
CANARY = "Confidential: 2027 salary bands were set under codeword zephyr quartz. Pay rises 9%."
CANARY_QUERY = "zephyr quartz codeword salary bands"
EMBEDDER = MiniLMEmbedder()  # loads on first use, once for both backends
EVERYONE = frozenset({"everyone"})
HR = frozenset({"hr"})
SYNTAX_QUERIES = [
    *('"', '"unclosed phrase', "*", "lamp*", "AND", "lighthouse AND", "OR NOT", "NEAR("),
    *("NEAR(lighthouse keeper, 2)", "text:lighthouse", "col:", "!", "!!lamp", "'"),
    *("keeper's lamp", "\\", "\\x00 \\\\", "-", "-lamp", "(", "((lamp) | (keeper)"),
    *("a & | <-> :* ( )", "^lamp + {keeper}", "the of and a", "?!.,;:-_", "", "   "),
]
_SYNTAX_ALPHABET = st.sampled_from(list("\"'*:!\\-()&|<>^+~{}[]., NEARANDORNOTlamp"))


def chunk_text(source: str) -> list[Chunk]:
    """One chunk per sentence, with offsets into ``source``."""
    return [
        Chunk(index=i, text=m.group(), start=m.start(), end=m.end())
        for i, m in enumerate(re.finditer(r"\S[^.!?]*[.!?]", source))
    ]


def doc_ids(hits: Iterable[Hit]) -> set[str]:
    return {hit.document_id for hit in hits}


def new_id() -> str:
    return str(uuid.uuid4())


@dataclass
class IndexDb:
    backend: str
    engine: Engine
    sessions: SessionFactory
    index: KnowledgeIndex
    embedder: MiniLMEmbedder
    _vectors: dict[str, NDArray[np.float32]] = field(default_factory=dict)

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        missing = [t for t in dict.fromkeys(texts) if t not in self._vectors]
        if missing:
            self._vectors.update(zip(missing, self.embedder.encode(missing), strict=True))
        return np.stack([self._vectors[t] for t in texts]).astype(np.float32)


@dataclass
class Space:
    """A fresh tenant with two collections (the index needs no other rows) and its sources."""

    db: IndexDb
    tenant_id: str = field(default_factory=new_id)
    collections: tuple[str, str] = field(default_factory=lambda: (new_id(), new_id()))
    sources: dict[str, str] = field(default_factory=dict)  # document id -> text

    def add(self, source: str, groups: frozenset[str] = EVERYONE, collection: int = 0) -> str:
        ref = DocumentRef(self.tenant_id, self.collections[collection], new_id(), groups)
        chunks = chunk_text(source)
        with self.db.sessions() as session:
            vectors = self.db.embed([c.text for c in chunks])
            self.db.index.replace_document(session, ref, chunks, vectors)
            session.commit()
        self.sources[ref.document_id] = source
        return ref.document_id

    def scope(self, groups: frozenset[str] = EVERYONE, collections: Sequence[int] = (0,)) -> Scope:
        return Scope(self.tenant_id, tuple(self.collections[i] for i in collections), groups)

    def keyword(self, query: str, k: int = 10, scope: Scope | None = None) -> list[Hit]:
        with self.db.sessions() as session:
            return self.db.index.keyword_search(session, scope or self.scope(), query, k)

    def dense(self, query: str, k: int = 10, scope: Scope | None = None) -> list[Hit]:
        vector = self.db.embed([query])[0]
        with self.db.sessions() as session:
            return self.db.index.dense_search(session, scope or self.scope(), vector, k)


@pytest.fixture(scope="module")
def index_db(backend: str, fresh_database: Callable[[str], str]) -> Iterator[IndexDb]:
    engine = make_engine(fresh_database(backend))
    migrate.upgrade(engine)
    yield IndexDb(backend, engine, make_session_factory(engine), make_index(engine), EMBEDDER)
    engine.dispose()


CorpusSpace = tuple[Space, dict[str, str]]


@pytest.fixture(scope="module")
def corpus_space(index_db: IndexDb) -> CorpusSpace:
    """The whole corpus in one tenant; returns the space and corpus key -> document id."""
    space = Space(index_db)
    return space, {key: space.add(source) for key, source in CORPUS.items()}


@pytest.fixture
def space(index_db: IndexDb) -> Space:
    return Space(index_db)


def prefer_vector_index(db: IndexDb, session: Session) -> None:
    """On PostgreSQL, leave HNSW as the only ordered path (a small table is otherwise sorted, and
    the ef_search shortfall never shows). DDL is transactional: the rollback restores it all."""
    if db.backend != "postgres":
        return
    session.execute(text("SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off"))
    session.execute(text("DROP INDEX ix_kb_chunks_tenant_collection, ix_kb_chunks_tenant_document"))
    plan = session.execute(
        text("EXPLAIN SELECT id FROM kb_chunks WHERE tenant_id = 'x' ORDER BY embedding <=> :v"),
        {"v": "[" + ",".join(["0.1"] * 384) + "]"},
    ).scalars()
    assert "ix_kb_chunks_embedding" in "\n".join(plan)


def assert_well_formed(hits: list[Hit], space: Space) -> None:
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    for hit in hits:
        assert space.sources[hit.document_id][hit.start : hit.end] == hit.text
        assert chunk_text(space.sources[hit.document_id])[hit.chunk_index].text == hit.text


@pytest.mark.parametrize(
    ("method", "query", "expected"),
    [
        ("keyword", "lighthouse lamp keeper automated", "lighthouse"),
        ("keyword", "quarterly estimated tax underpayment penalty", "tax"),
        ("keyword", "castling king rook", "chess"),
        ("keyword", "espresso crema pressure", "espresso"),
        ("dense", "Which flightless birds raise chicks on frozen ocean in the dark?", "penguins"),
        ("dense", "How do I change my login credentials if I forgot them?", "password"),
        ("dense", "What happened to the weather after the big 1815 eruption?", "volcano"),
        ("dense", "How do insects let each other know where nectar is?", "bees"),
    ],
)
def test_search_puts_the_right_chunk_first(
    corpus_space: CorpusSpace, method: str, query: str, expected: str
) -> None:
    space, ids = corpus_space
    hits: list[Hit] = getattr(space, method)(query, 5)
    assert hits[0].document_id == ids[expected]
    assert_well_formed(hits, space)
    if method == "dense":  # every visible chunk is a dense candidate
        assert len(hits) == 5
        assert -1.0 <= hits[-1].score <= hits[0].score <= 1.0
    else:
        assert all(h.score > 0 for h in hits)


@pytest.mark.parametrize("k", [1, 1000])
def test_restricted_document_never_reaches_a_scope_without_its_group(space: Space, k: int) -> None:
    for key in ("lighthouse", "tax", "password"):
        space.add(CORPUS[key])
    secret = space.add(CANARY, groups=HR)
    for hits in (space.keyword(CANARY_QUERY, k), space.dense(CANARY_QUERY, k)):
        assert secret not in doc_ids(hits)
        assert all("zephyr" not in h.text for h in hits)
    with_hr = space.scope(EVERYONE | HR)
    assert space.keyword(CANARY_QUERY, k, with_hr)[0].document_id == secret
    assert space.dense(CANARY_QUERY, k, with_hr)[0].document_id == secret


def test_many_better_restricted_chunks_cannot_crowd_out_public_ones(space: Space) -> None:
    db = space.db
    space.add(
        " ".join(f"Payroll vault key rotation schedule entry {i} is day {i}." for i in range(200)),
        groups=HR,
    )
    public = {
        space.add(text)
        for text in (
            "The cafeteria schedule changes on public holidays.",
            "The library opening schedule is posted weekly.",
            "The gym schedule lists yoga classes on Mondays.",
        )
    }
    query = "payroll vault key rotation schedule"
    vector = db.embed([query])[0]
    for k in (2, 3, 5, 50):
        with db.sessions() as session:
            prefer_vector_index(db, session)
            for hits in (
                db.index.keyword_search(session, space.scope(), query, k),
                db.index.dense_search(session, space.scope(), vector, k),
            ):
                assert len(hits) == min(k, len(public))
                assert doc_ids(hits) <= public
    assert len(space.keyword(query, 5, space.scope(HR))) == 5
    assert len(space.dense(query, 5, space.scope(HR))) == 5
    if db.backend == "postgres":  # the caller's planner settings survive the exact fallback
        with db.sessions() as session:
            session.execute(text("SELECT set_config('hnsw.ef_search', '77', true)"))
            prefer_vector_index(db, session)  # turns enable_seqscan off
            assert len(db.index.dense_search(session, space.scope(), vector, 5)) == 3
            get = text("SELECT current_setting(:name)")
            names = ("hnsw.ef_search", "enable_indexscan", "enable_seqscan")
            assert [session.execute(get, {"name": n}).scalar() for n in names] == [
                "77",
                "on",
                "off",
            ]


def test_tenants_and_collections_are_isolated(index_db: IndexDb) -> None:
    mine, theirs = Space(index_db), Space(index_db)
    own = mine.add(CORPUS["octopus"])
    elsewhere = mine.add(CORPUS["apollo"], collection=1)
    foreign = {theirs.add(CORPUS["octopus"]), theirs.add(CORPUS["apollo"])}
    both = mine.scope(collections=(0, 1))
    for query in ("octopus hearts blue blood", "apollo lunar module tranquility"):
        # Dense search ranks every visible chunk, so a large k returns exactly the scope.
        assert doc_ids(mine.dense(query, 100)) == {own}
        assert doc_ids(mine.dense(query, 100, both)) == {own, elsewhere}
        assert doc_ids(mine.keyword(query, 100)) <= {own}
        assert doc_ids(mine.keyword(query, 100, both)) <= {own, elsewhere}
    assert mine.keyword("apollo lunar module", 10, both)[0].document_id == elsewhere
    assert not foreign & doc_ids(mine.dense("octopus", 1000, both))


def test_replace_document_commits_or_rolls_back_with_the_session(space: Space) -> None:
    db, old_text = space.db, CORPUS["glacier"]
    document_id = space.add(old_text)
    ref = DocumentRef(space.tenant_id, space.collections[0], document_id, EVERYONE)
    new_chunks = chunk_text(CORPUS["sourdough"])[:2]
    new_vectors = db.embed([c.text for c in new_chunks])
    with db.sessions() as session:
        db.index.replace_document(session, ref, new_chunks, new_vectors)
        assert db.index.count_chunks(session, space.tenant_id, document_id) == 2
        session.rollback()
    with db.sessions() as session:
        count = db.index.count_chunks(session, space.tenant_id, document_id)
        assert count == len(chunk_text(old_text))
    assert doc_ids(space.keyword("glaciers moraines")) == {document_id}
    assert space.keyword("sourdough starter") == []
    with db.sessions() as session:
        db.index.replace_document(session, ref, new_chunks, new_vectors)
        session.commit()
    space.sources[document_id] = CORPUS["sourdough"]
    with db.sessions() as session:
        assert db.index.count_chunks(session, space.tenant_id, document_id) == 2
    assert space.keyword("glaciers moraines") == []
    hits = space.dense("wild yeast culture fed with flour", 10)
    assert {h.text for h in hits} == {c.text for c in new_chunks}
    assert_well_formed(hits, space)


def test_replace_document_rejects_mismatched_embeddings(space: Space) -> None:
    db = space.db
    ref = DocumentRef(space.tenant_id, space.collections[0], new_id(), EVERYONE)
    chunks, wrong = chunk_text(CORPUS["train"]), np.zeros((5, 384), dtype=np.float32)
    with db.sessions() as session, pytest.raises(ValueError, match="shape"):
        db.index.replace_document(session, ref, chunks, wrong)


def raw_traces(db: IndexDb, document_id: str, rowids: Sequence[int]) -> dict[str, int]:
    """Rows the document (or the given SQLite rowids) still has in the index tables."""
    with db.engine.connect() as connection:
        sql = "SELECT count(*) FROM kb_chunks WHERE document_id = :d"
        traces = {"kb_chunks": connection.execute(text(sql), {"d": document_id}).scalar_one()}
        if db.backend == "sqlite" and rowids:
            listed = ",".join(str(int(r)) for r in rowids)
            for table, column in (("kb_chunks_fts", "rowid"), ("kb_chunk_groups", "chunk_rowid")):
                sql = f"SELECT count(*) FROM {table} WHERE {column} IN ({listed})"
                traces[table] = connection.execute(text(sql)).scalar_one()
            sql = "SELECT (SELECT count(*) FROM kb_chunks) - (SELECT count(*) FROM kb_chunks_fts)"
            assert connection.execute(text(sql)).scalar_one() == 0  # no orphaned FTS rows
        return traces


def test_delete_document_leaves_no_trace_and_no_cached_vector(space: Space) -> None:
    db = space.db
    keep, gone = space.add(CORPUS["train"]), space.add(CORPUS["printer"])
    query = "paper jam in the printer"
    assert space.dense(query, 1)[0].document_id == gone  # fills the SQLite vector cache
    rowids: list[int] = []
    if db.backend == "sqlite":
        with db.engine.connect() as connection:
            sql = text("SELECT rowid FROM kb_chunks WHERE document_id = :d")
            rowids = list(connection.execute(sql, {"d": gone}).scalars())
    with db.sessions() as session:
        assert db.index.delete_document(session, space.tenant_id, gone) == 3
        session.commit()
    assert set(raw_traces(db, gone, rowids).values()) == {0}
    # k=1: a stale vector cache would rank a deleted chunk first and return nothing.
    assert doc_ids(space.dense(query, 1)) == {keep}
    assert doc_ids(space.dense(query, 100)) == {keep}
    assert doc_ids(space.keyword("printer jam", 100)) <= {keep}
    with db.sessions() as session:
        assert db.index.delete_document(session, space.tenant_id, gone) == 0
        count = db.index.count_chunks(session, space.tenant_id, keep)
        assert count == len(chunk_text(CORPUS["train"]))


def test_delete_collection_removes_only_that_collection(space: Space) -> None:
    db = space.db
    first = space.add(CORPUS["bees"])
    second = space.add(CORPUS["chess"], collection=1)
    space.add(CORPUS["apollo"], collection=1)
    only_second, both = space.scope(collections=(1,)), space.scope(collections=(0, 1))
    assert space.dense("chess castling", 5, only_second)
    expected = len(chunk_text(CORPUS["chess"])) + len(chunk_text(CORPUS["apollo"]))
    with db.sessions() as session:
        removed = db.index.delete_collection(session, space.tenant_id, space.collections[1])
        assert removed == expected
        session.commit()
    assert space.dense("chess castling", 5, only_second) == []
    assert space.keyword("chess castling", 5, only_second) == []
    assert raw_traces(db, second, [])["kb_chunks"] == 0
    assert doc_ids(space.dense("bees", 5, both)) == {first}


def test_set_groups_takes_effect_on_the_next_search(space: Space) -> None:
    db = space.db
    document_id = space.add(CORPUS["espresso"], groups=HR)
    query = "espresso crema"
    assert space.keyword(query) == space.dense(query) == []
    for groups, visible in ((EVERYONE, True), (HR, False)):
        with db.sessions() as session:
            ref = DocumentRef(space.tenant_id, space.collections[0], document_id, groups)
            db.index.set_groups(session, ref)
            session.commit()
        assert bool(space.keyword(query)) is visible
        assert bool(space.dense(query)) is visible
    assert doc_ids(space.dense(query, 10, space.scope(HR))) == {document_id}


@pytest.mark.parametrize("query", SYNTAX_QUERIES)
def test_keyword_search_treats_query_syntax_as_text(corpus_space: CorpusSpace, query: str) -> None:
    space, ids = corpus_space
    hits = space.keyword(query)
    assert isinstance(hits, list)
    if "lamp" in query or "keeper" in query:
        assert hits[0].document_id == ids["lighthouse"]


@settings(max_examples=50, deadline=None)
@given(query=st.one_of(st.text(max_size=120), st.text(alphabet=_SYNTAX_ALPHABET, max_size=60)))
def test_keyword_search_never_raises(corpus_space: CorpusSpace, query: str) -> None:
    space, _ = corpus_space
    assert isinstance(space.keyword(query, 5), list)


def test_keyword_search_keeps_non_ascii_words_whole(space: Space) -> None:
    document_id = space.add(
        "The Zürich office moved to Oerlikon; the Kraków team stays in the old town."
    )
    space.add("A rich harvest of apples in autumn made the farmers rich.")
    hits = space.keyword("Zürich", 5)
    assert hits
    assert hits[0].document_id == document_id
    assert all("rich harvest" not in hit.text for hit in hits)
