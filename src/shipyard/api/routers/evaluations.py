"""Stored evaluations of a task (per version, model artifact and dataset)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from shipyard.api.deps import ContainerDep, PrincipalDep
from shipyard.api.routers.tasks import PROBLEM_RESPONSES

router = APIRouter(tags=["evaluations"])


@router.get(
    "/v1/tasks/{task}/evaluations",
    summary="Evaluations of a task, newest first (metrics, gates, pass/fail; no per-case data)",
    responses={404: PROBLEM_RESPONSES[404]},
)
def list_evaluations(
    task: str,
    principal: PrincipalDep,
    container: ContainerDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[dict[str, Any]]:
    container.runs.spec_for(principal, task)  # authorizes and 404s unknown tasks
    return container.evaluations.list(task, limit=limit)
