"""Tasks: list, describe, and one typed ``POST /v1/tasks/<name>/runs`` route per task spec,
so the OpenAPI document shows each task's own input and output schema."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, create_model

from shipyard.api.deps import ContainerDep, CredentialsDep, PrincipalDep, authenticate
from shipyard.api.routers.streaming import add_stream_route
from shipyard.api.schemas import RunOut, TaskDetail, TaskSummary, run_out
from shipyard.errors import NotFound
from shipyard.kinds.generate import is_free_text
from shipyard.observability.logging import request_id_var
from shipyard.spec import Project, TaskSpec, input_model, output_model

PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"description": text, "content": {"application/problem+json": {}}}
    for code, text in {
        401: "Missing, invalid, expired or revoked API key",
        403: "The key's roles may not run this task",
        404: "No such task",
        413: "Request body too large",
        422: "Input does not match the task's input schema (field named in `errors`)",
        429: "A rate limit, concurrent-run limit or budget was reached (see Retry-After)",
        503: "The task's model is not ready, or the model failed (run stored as failed)",
    }.items()
}


def _summary(spec: TaskSpec, readiness: Mapping[str, str]) -> dict[str, Any]:
    status = readiness.get(spec.name, "not loaded")
    return {
        "name": spec.name,
        "version": spec.version,
        "kind": spec.kind,
        "description": spec.description,
        "owner": spec.owner,
        "ready": status == "ready",
        "status": status,
    }


def _pascal(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("-"))


def _add_run_route(router: APIRouter, spec: TaskSpec) -> None:
    name = _pascal(spec.name)
    request_model = create_model(
        f"{name}RunRequest",
        __config__=ConfigDict(extra="forbid"),
        input=(input_model(spec), ...),
    )
    typed_output: Any = output_model(spec) | None
    response_model = create_model(f"{name}Run", __base__=RunOut, output=(typed_output, None))

    async def create_run(
        body: BaseModel,
        credentials: CredentialsDep,
        container: ContainerDep,
        request: Request,
    ) -> JSONResponse:
        typed_input: BaseModel = body.input  # type: ignore[attr-defined]  # spec-built model

        def authenticate_and_run() -> dict[str, Any]:
            # The hot path: authentication, the run and its storage in ONE worker-thread hop
            # (a sync dependency plus a sync endpoint would cost two).
            principal = authenticate(container, credentials)
            # A concurrent-run slot is held for the run only, and given back however it ends.
            with container.rate_limits.run_slot(principal):
                run = container.runs.create(
                    principal, spec.name, typed_input.model_dump(), request_id=request_id_var.get()
                )
            return run_out(run)

        stored = await run_in_threadpool(authenticate_and_run)
        # A path, not an absolute URL: the Host header is the client's to choose.
        location = request.app.url_path_for("get_run", run_id=stored["id"])
        # run_out already validated the body; a response_model would validate it twice.
        return JSONResponse(stored, status_code=201, headers={"Location": location})

    # The body type exists only at run time; FastAPI reads it from the annotations.
    create_run.__annotations__["body"] = request_model
    router.add_api_route(
        f"/v1/tasks/{spec.name}/runs",
        create_run,
        methods=["POST"],
        status_code=201,
        response_model=None,
        summary=f"Run {spec.name} v{spec.version}",
        description=spec.description,
        operation_id=f"run_{spec.name.replace('-', '_')}",
        tags=["tasks"],
        responses={
            201: {"model": response_model, "description": "The stored run"},
            **PROBLEM_RESPONSES,
        },
    )


def build_router(project: Project) -> APIRouter:
    router = APIRouter()

    @router.get(
        "/v1/tasks",
        tags=["tasks"],
        response_model=list[TaskSummary],
        summary="Tasks this project serves",
    )
    def list_tasks(principal: PrincipalDep, container: ContainerDep) -> list[dict[str, Any]]:
        readiness = container.runtime.readiness()  # once, not once per task
        return [
            _summary(container.runs.spec_for(principal, name), readiness) for name in project.tasks
        ]

    @router.get(
        "/v1/tasks/{task}",
        tags=["tasks"],
        response_model=TaskDetail,
        summary="One task: spec and typed input/output JSON Schemas",
        responses={404: PROBLEM_RESPONSES[404]},
    )
    def get_task(task: str, principal: PrincipalDep, container: ContainerDep) -> dict[str, Any]:
        spec = container.runs.spec_for(principal, task)
        return {
            **_summary(spec, container.runtime.readiness()),
            "spec": spec.model_dump(mode="json", exclude_none=True),
            "input_schema": input_model(spec).model_json_schema(),
            "output_schema": output_model(spec).model_json_schema(),
        }

    for spec in project.tasks.values():
        _add_run_route(router, spec)
        if spec.kind == "generate" and is_free_text(spec):
            add_stream_route(router, spec)

    @router.post("/v1/tasks/{task}/runs", include_in_schema=False)
    def unknown_task_run(task: str, principal: PrincipalDep) -> None:
        # Authenticate first so an anonymous caller cannot probe for task names.
        raise NotFound(f"no task {task!r}")

    return router
