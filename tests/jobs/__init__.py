"""Job runner tests, and the generated documents and checks they share."""

from __future__ import annotations

import random

from sqlalchemy import func, select

from shipyard.access.principal import Principal
from shipyard.access.roles import Role
from shipyard.bootstrap import Container
from shipyard.knowledge.chunking import ChunkingOptions, chunk_document
from shipyard.knowledge.parsing import ParseLimits, parse_document
from shipyard.services.ingestion import Upload
from shipyard.storage.tables import Document

_VOCABULARY = (
    "harbour crane cargo manifest invoice tide vessel captain berth pilot container customs "
    "ledger anchor route weather delay schedule freight quay dock tug barge hull keel rudder "
    "mast sail deck cabin galley bridge engine propeller fuel ballast draft beam stern bow "
    "port starboard signal beacon buoy channel lock canal river estuary coast shore pier "
    "warehouse forklift pallet crate barrel sack bale drum tank hold hatch gangway mooring "
    "line rope chain winch derrick gantry terminal yard gate permit clearance inspection "
    "duty tariff broker agent carrier shipper consignee notify voyage leg transit arrival "
    "departure estimate actual window slot booking release hold demurrage detention storage "
    "handling surcharge rate quote contract clause liability insurance claim damage loss "
    "survey report certificate origin destination transshipment feeder mainline alliance "
    "rotation capacity utilisation forecast backlog congestion strike maintenance repair"
)
_WORDS = _VOCABULARY.split()
UNIQUE_SENTENCE = "The heliotrope walrus audits quarterly marmalade invoices every Tuesday."
UNIQUE_QUERY = "heliotrope walrus marmalade"
UNIQUE_DOCUMENT = 421


def admin(container: Container) -> Principal:
    tenant = container.access.ensure_tenant("default")
    return Principal(
        tenant_id=tenant.id,
        tenant_slug="default",
        key_id=None,
        name="tests",
        roles=frozenset({Role.ADMIN}),
    )


def document_text(number: int) -> str:
    """Distinct generated prose: most documents make one chunk, every seventh two or three."""
    rng = random.Random(number)
    long = number % 7 == 0
    paragraphs = []
    for paragraph in range(rng.randint(3, 5) if long else rng.randint(2, 3)):
        sentences = []
        if paragraph == 0:
            sentences.append(f"Record {number:04d} describes a {rng.choice(_WORDS)} case.")
        for _ in range(rng.randint(5, 6) if long else rng.randint(1, 3)):
            words = [rng.choice(_WORDS) for _ in range(rng.randint(8, 14))]
            sentences.append(" ".join(words).capitalize() + ".")
        if number == UNIQUE_DOCUMENT and paragraph == 1:
            sentences.append(UNIQUE_SENTENCE)
        paragraphs.append(" ".join(sentences))
    return "\n\n".join(paragraphs) + "\n"


def uploads(count: int, start: int = 0) -> list[Upload]:
    return [
        Upload(source=f"doc-{number:04d}.txt", content=document_text(number).encode())
        for number in range(start, start + count)
    ]


def expected_chunks(container: Container, upload: Upload) -> int:
    """How many chunks ingestion must store for ``upload``, recomputed in this process."""
    limits = ParseLimits(max_bytes=container.settings.max_document_bytes)
    parsed = parse_document(upload.source, upload.content, limits=limits)
    return len(chunk_document(parsed, ChunkingOptions()))


def status_counts(container: Container) -> dict[str, int]:
    with container.sessions() as session:
        rows = session.execute(
            select(Document.status, func.count()).group_by(Document.status)
        ).all()
    return {str(status): int(count) for status, count in rows}
