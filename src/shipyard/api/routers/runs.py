"""Runs: fetch one, list with filters and keyset pagination."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from shipyard import names
from shipyard.api.deps import ContainerDep, PrincipalDep
from shipyard.api.routers.tasks import PROBLEM_RESPONSES
from shipyard.api.schemas import IsoDatetime, RunList, RunOut, run_out
from shipyard.storage.repositories import RunFilter

router = APIRouter(tags=["runs"])


@router.get(
    "/v1/runs/{run_id}",
    name="get_run",
    response_model=RunOut,
    summary="One run",
    responses={
        403: {
            "description": "reveal_pii: the caller may not see this task's personal data",
            "content": {"application/problem+json": {}},
        },
        404: PROBLEM_RESPONSES[404],
        409: {
            "description": "reveal_pii: the run was redacted irreversibly or purged",
            "content": {"application/problem+json": {}},
        },
    },
)
def get_run(
    run_id: str,
    principal: PrincipalDep,
    container: ContainerDep,
    reveal_pii: Annotated[
        bool,
        Query(
            description="Restore redacted personal data (pii:reveal or the task's "
            "pii.reveal_roles; audited)"
        ),
    ] = False,
) -> dict[str, Any]:
    return run_out(container.runs.get(principal, run_id, reveal_pii=reveal_pii))


@router.get("/v1/runs", response_model=RunList, summary="Runs, newest first")
def list_runs(
    principal: PrincipalDep,
    container: ContainerDep,
    task: Annotated[str | None, Query(pattern=names.SLUG)] = None,
    status: Literal["ok", "needs_review", "failed"] | None = None,
    created_after: Annotated[IsoDatetime | None, Query(description="ISO 8601 with offset")] = None,
    created_before: Annotated[IsoDatetime | None, Query(description="ISO 8601 with offset")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> dict[str, Any]:
    page = container.runs.list(
        principal,
        RunFilter(
            task=task, status=status, created_after=created_after, created_before=created_before
        ),
        limit=limit,
        cursor=cursor,
    )
    return {"items": [run_out(run) for run in page.runs], "next_cursor": page.next_cursor}
