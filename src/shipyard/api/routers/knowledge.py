"""Collections, documents (upload by JSON text or multipart files), search and jobs."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from shipyard import names
from shipyard.access.principal import Principal
from shipyard.api.deps import ContainerDep, CredentialsDep, PrincipalDep, authenticate
from shipyard.api.routers.tasks import PROBLEM_RESPONSES
from shipyard.api.schemas import JSON_INTEGER
from shipyard.errors import FieldProblem, InvalidInput
from shipyard.services.ingestion import Accepted, JobView, Upload
from shipyard.services.knowledge import CollectionView
from shipyard.services.runs import validation_problems
from shipyard.storage.tables import Document

router = APIRouter(tags=["knowledge"])

NAME = names.COLLECTION
MAX_DOCUMENTS_PER_REQUEST = 200
MAX_TEXT_CHARS = 5_000_000
MAX_METADATA_CHARS = 16_384  # serialized JSON per document


RETENTION = "Days documents are kept before retention purges them; null keeps them forever"
RetentionDays = Annotated[int, Field(ge=1, le=36_500), JSON_INTEGER]


# -- bodies --------------------------------------------------------------------------------
class CollectionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=NAME, description="Lowercase letters, digits and '-'")
    description: str = Field(default="", max_length=2000)
    retention_days: RetentionDays | None = Field(default=None, description=RETENTION)


class CollectionPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    retention_days: RetentionDays | None = Field(description=RETENTION)


class CollectionOut(BaseModel):
    id: str
    name: str
    description: str
    documents: dict[str, int] = Field(description="Documents by status")
    created_at: datetime
    retention_days: int | None = Field(default=None, description=RETENTION)


class TextDocumentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: str = Field(min_length=1, max_length=500, description="File name or your own key")
    text: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    title: str | None = Field(default=None, max_length=500)
    media_type: Literal["text/plain", "text/markdown", "text/html"] = "text/plain"
    groups: list[str] = Field(default=[], max_length=50, description="Access groups")
    metadata: dict[str, Any] = {}


class DocumentsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    documents: list[TextDocumentIn] = Field(min_length=1, max_length=MAX_DOCUMENTS_PER_REQUEST)


class DocumentOut(BaseModel):
    id: str
    source: str
    title: str
    media_type: str | None
    status: str = Field(description="pending | indexed | rejected | purged (by retention)")
    reason_code: str | None
    reason: str | None
    groups: list[str]
    metadata: dict[str, Any]
    chunk_count: int
    flags: list[str]
    size_bytes: int
    content_sha256: str
    job_id: str | None
    created_at: datetime
    updated_at: datetime
    indexed_at: datetime | None


class AcceptedOut(BaseModel):
    source: str
    status: str = Field(description="queued | unchanged | duplicate | regrouped | rejected")
    document_id: str | None
    reason: str | None


class JobOut(BaseModel):
    id: str
    type: str
    status: str = Field(description="queued | running | done")
    total: int
    processed: int
    documents: dict[str, int] = Field(description="This job's documents by status")
    detail: dict[str, Any]
    created_by: str
    created_at: datetime
    finished_at: datetime | None


class IngestOut(BaseModel):
    job: JobOut
    documents: list[AcceptedOut]


class DocumentPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    groups: list[str] = Field(max_length=50)


class SearchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: str = Field(min_length=1, max_length=2000)
    k: Annotated[int, Field(ge=1, le=50), JSON_INTEGER] = 5
    mode: Literal["hybrid", "keyword", "dense"] = "hybrid"


class SearchHitOut(BaseModel):
    document_id: str
    source: str
    title: str
    collection: str
    chunk: int
    text: str
    start: int
    end: int
    heading: str | None
    score: float
    scores: dict[str, float] = Field(description="Per retriever score and rank (provenance)")
    flagged: bool = Field(description="The passage reads like an instruction to a model")


class SearchOut(BaseModel):
    hits: list[SearchHitOut]


# -- converters ----------------------------------------------------------------------------
def _document_out(document: Document) -> dict[str, Any]:
    return DocumentOut(
        id=document.id,
        source=document.source,
        title=document.title,
        media_type=document.media_type,
        status=document.status,
        reason_code=document.reason_code,
        reason=document.reason,
        groups=document.groups,
        metadata=document.meta,
        chunk_count=document.chunk_count,
        flags=document.flags,
        size_bytes=document.size_bytes,
        content_sha256=document.content_sha256,
        job_id=document.job_id,
        created_at=document.created_at,
        updated_at=document.updated_at,
        indexed_at=document.indexed_at,
    ).model_dump(mode="json")


def _collection_out(view: CollectionView) -> dict[str, Any]:
    return CollectionOut(
        id=view.collection.id,
        name=view.collection.name,
        description=view.collection.description,
        documents=view.counts,
        created_at=view.collection.created_at,
        retention_days=view.collection.retention_days,
    ).model_dump(mode="json")


def job_out(view: JobView) -> dict[str, Any]:
    job = view.job
    return JobOut(
        id=job.id,
        type=job.type,
        status=view.status,
        total=job.total,
        processed=view.processed,
        documents=view.counts,
        detail=job.detail,
        created_by=job.created_by,
        created_at=job.created_at,
        finished_at=job.finished_at,
    ).model_dump(mode="json")


def _accepted_out(result: Accepted) -> dict[str, Any]:
    return AcceptedOut(
        source=result.source,
        status=result.status,
        document_id=result.document_id,
        reason=result.reason,
    ).model_dump()


# -- collections ---------------------------------------------------------------------------
@router.post(
    "/v1/collections",
    status_code=201,
    response_model=CollectionOut,
    summary="Create a collection",
    responses={409: {"description": "A collection of that name exists"}},
)
def create_collection(
    body: CollectionIn, principal: PrincipalDep, container: ContainerDep
) -> dict[str, Any]:
    found = container.knowledge.create_collection(
        principal, body.name, body.description, body.retention_days
    )
    return _collection_out(CollectionView(found, {}))


@router.get("/v1/collections", response_model=list[CollectionOut], summary="Collections")
def list_collections(principal: PrincipalDep, container: ContainerDep) -> list[dict[str, Any]]:
    return [_collection_out(view) for view in container.knowledge.collections(principal)]


@router.get(
    "/v1/collections/{collection}",
    response_model=CollectionOut,
    summary="One collection",
    responses={404: PROBLEM_RESPONSES[404]},
)
def get_collection(
    collection: str, principal: PrincipalDep, container: ContainerDep
) -> dict[str, Any]:
    return _collection_out(container.knowledge.collection(principal, collection))


@router.patch(
    "/v1/collections/{collection}",
    response_model=CollectionOut,
    summary="Change a collection's retention period",
    responses={404: PROBLEM_RESPONSES[404]},
)
def patch_collection(
    collection: str, body: CollectionPatch, principal: PrincipalDep, container: ContainerDep
) -> dict[str, Any]:
    return _collection_out(
        container.knowledge.set_retention(principal, collection, body.retention_days)
    )


@router.delete(
    "/v1/collections/{collection}",
    status_code=204,
    summary="Delete a collection with all its documents, chunks and vectors",
    responses={404: PROBLEM_RESPONSES[404]},
)
def delete_collection(
    collection: str, principal: PrincipalDep, container: ContainerDep
) -> Response:
    container.knowledge.delete_collection(principal, collection)
    return Response(status_code=204)


# -- documents -----------------------------------------------------------------------------
_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": DocumentsIn.model_json_schema()},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["files"],
                    "properties": {
                        "files": {
                            "type": "array",
                            "minItems": 1,
                            "items": {"type": "string", "format": "binary"},
                            "description": "PDF, DOCX, HTML, Markdown, TXT or EML files",
                        },
                        "groups": {"type": "string", "description": "Comma-separated groups"},
                        "metadata": {"type": "string", "description": "JSON object"},
                    },
                }
            },
        },
    }
}


def _strict_json(raw: bytes | str, where: str) -> Any:
    """JSON without NaN/Infinity (PostgreSQL's json refuses them) and without nesting deep
    enough to exhaust the parser's recursion (a 422, never a 500)."""

    def refuse(constant: str) -> Any:
        raise ValueError(f"{constant} is not valid JSON")

    try:
        return json.loads(raw, parse_constant=refuse)
    except (ValueError, RecursionError):
        raise InvalidInput("invalid JSON", [FieldProblem(where, "not valid JSON")]) from None


def _parse_metadata(text: str) -> dict[str, Any]:
    if len(text) > MAX_METADATA_CHARS:
        raise InvalidInput(
            "metadata too large", [FieldProblem("metadata", f"at most {MAX_METADATA_CHARS} chars")]
        )
    metadata = _strict_json(text, "metadata")
    if not isinstance(metadata, dict):
        raise InvalidInput("invalid metadata", [FieldProblem("metadata", "a JSON object")])
    return metadata


def _text_uploads(raw: bytes) -> list[Upload]:
    payload = _strict_json(raw, "body")
    try:
        body = DocumentsIn.model_validate(payload)
    except ValidationError as exc:
        raise InvalidInput("invalid documents", validation_problems(exc, "body")) from None
    for position, item in enumerate(body.documents):
        if len(json.dumps(item.metadata)) > MAX_METADATA_CHARS:
            raise InvalidInput(
                "metadata too large",
                [
                    FieldProblem(
                        f"documents[{position}].metadata", f"at most {MAX_METADATA_CHARS} chars"
                    )
                ],
            )
    return [
        Upload(
            source=item.source,
            content=item.text.encode(),
            media_type=item.media_type,
            title=item.title,
            groups=frozenset(item.groups),
            metadata=item.metadata,
        )
        for item in body.documents
    ]


async def _file_uploads(request: Request) -> list[Upload]:
    form = await request.form(max_files=MAX_DOCUMENTS_PER_REQUEST, max_fields=10)
    groups_text = form.get("groups")
    metadata_text = form.get("metadata")
    groups = frozenset(part.strip() for part in str(groups_text or "").split(",") if part.strip())
    metadata = _parse_metadata(str(metadata_text)) if metadata_text else {}
    uploads = []
    for item in form.getlist("files"):
        if not isinstance(item, UploadFile) or not item.filename:
            raise InvalidInput("invalid upload", [FieldProblem("files", "send files by name")])
        uploads.append(
            Upload(
                source=item.filename,
                content=await item.read(),
                media_type=item.content_type,
                groups=groups,
                metadata=metadata,
            )
        )
    if not uploads:
        raise InvalidInput("no files", [FieldProblem("files", "send at least one file")])
    return uploads


@router.post(
    "/v1/collections/{collection}/documents",
    status_code=202,
    response_model=IngestOut,
    summary="Add or replace documents (JSON text or multipart files); indexed by a job",
    openapi_extra=_UPLOAD_BODY,
    responses={404: PROBLEM_RESPONSES[404], 413: PROBLEM_RESPONSES[413]},
)
async def add_documents(
    collection: str, request: Request, credentials: CredentialsDep, container: ContainerDep
) -> dict[str, Any]:
    found_principal: Principal = await run_in_threadpool(authenticate, container, credentials)
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        uploads = await _file_uploads(request)
    elif content_type.startswith("application/json"):
        # Parsing up to SHIPYARD_MAX_UPLOAD_BYTES of JSON is CPU work: off the event loop.
        uploads = await run_in_threadpool(_text_uploads, await request.body())
    else:
        raise InvalidInput(
            "unsupported content type",
            [FieldProblem("content-type", "application/json or multipart/form-data")],
        )
    view, results = await run_in_threadpool(
        container.ingestion.submit,
        found_principal,
        collection,
        uploads,
        field="files" if content_type.startswith("multipart/form-data") else "documents",
    )
    return {"job": job_out(view), "documents": [_accepted_out(r) for r in results]}


@router.get(
    "/v1/collections/{collection}/documents",
    response_model=list[DocumentOut],
    summary="Documents of a collection, by id (page with `after`)",
    responses={404: PROBLEM_RESPONSES[404]},
)
def list_documents(
    collection: str,
    principal: PrincipalDep,
    container: ContainerDep,
    status: Literal["pending", "indexed", "rejected"] | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    after: Annotated[
        str | None, Query(max_length=36, description="Last id of the previous page")
    ] = None,
) -> list[dict[str, Any]]:
    documents = container.knowledge.documents(
        principal, collection, status=status, limit=limit, after=after
    )
    return [_document_out(document) for document in documents]


@router.get(
    "/v1/collections/{collection}/documents/{document_id}",
    response_model=DocumentOut,
    summary="One document",
    responses={404: PROBLEM_RESPONSES[404]},
)
def get_document(
    collection: str, document_id: str, principal: PrincipalDep, container: ContainerDep
) -> dict[str, Any]:
    return _document_out(container.knowledge.document(principal, collection, document_id))


@router.patch(
    "/v1/collections/{collection}/documents/{document_id}",
    response_model=DocumentOut,
    summary="Change a document's access groups (effective on the next search)",
    responses={404: PROBLEM_RESPONSES[404]},
)
def patch_document(
    collection: str,
    document_id: str,
    body: DocumentPatch,
    principal: PrincipalDep,
    container: ContainerDep,
) -> dict[str, Any]:
    document = container.knowledge.set_groups(principal, collection, document_id, body.groups)
    return _document_out(document)


@router.delete(
    "/v1/collections/{collection}/documents/{document_id}",
    status_code=204,
    summary="Delete a document with every chunk and vector",
    responses={404: PROBLEM_RESPONSES[404]},
)
def delete_document(
    collection: str, document_id: str, principal: PrincipalDep, container: ContainerDep
) -> Response:
    container.knowledge.delete_document(principal, collection, document_id)
    return Response(status_code=204)


# -- search and jobs -----------------------------------------------------------------------
@router.post(
    "/v1/collections/{collection}/search",
    response_model=SearchOut,
    summary="Hybrid search (BM25 + dense, rank-fused) within the caller's access groups",
    responses={404: PROBLEM_RESPONSES[404]},
)
def search(
    collection: str, body: SearchIn, principal: PrincipalDep, container: ContainerDep
) -> dict[str, Any]:
    passages = container.knowledge.search(
        principal, [collection], body.query, k=body.k, mode=body.mode
    )
    return {
        "hits": [
            SearchHitOut(
                document_id=p.hit.document_id,
                source=p.source,
                title=p.title,
                collection=p.collection,
                chunk=p.hit.chunk_index,
                text=p.hit.text,
                start=p.hit.start,
                end=p.hit.end,
                heading=p.hit.heading,
                score=p.hit.score,
                scores=p.hit.scores,
                flagged=p.flagged,
            ).model_dump()
            for p in passages
        ]
    }


@router.get(
    "/v1/jobs/{job_id}",
    response_model=JobOut,
    summary="A job's status and progress",
    responses={404: PROBLEM_RESPONSES[404]},
)
def get_job(job_id: str, principal: PrincipalDep, container: ContainerDep) -> dict[str, Any]:
    return job_out(container.ingestion.job(principal, job_id))


@router.get("/v1/jobs", response_model=list[JobOut], summary="Recent jobs, newest first")
def list_jobs(
    principal: PrincipalDep,
    container: ContainerDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
) -> list[dict[str, Any]]:
    return [job_out(view) for view in container.ingestion.jobs(principal, limit)]
