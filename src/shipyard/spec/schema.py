"""The published JSON Schemas of ``shipyard.yaml`` and task spec files.

Generated from the Pydantic models, so the schema editors use for completion and the rules
Shipyard enforces cannot drift apart. The models check more than a JSON Schema can say (field
combinations, cross-references, files on disk); ``shipyard spec validate`` is the full check.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from shipyard.spec.model import ProjectConfig, TaskSpec

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
TASK_SPEC_SCHEMA_ID = "https://shipyard.dev/schemas/task-spec.schema.json"
PROJECT_SCHEMA_ID = "https://shipyard.dev/schemas/project.schema.json"


def _published(model: type[BaseModel], schema_id: str, title: str) -> dict[str, Any]:
    schema = model.model_json_schema(mode="validation")
    schema.pop("title", None)
    head = {"$schema": JSON_SCHEMA_DIALECT, "$id": schema_id, "title": title}
    return {**head, "description": schema.pop("description", ""), **schema}


def spec_json_schema() -> dict[str, Any]:
    """JSON Schema of one task spec file (``tasks/*.yaml``)."""
    return _published(TaskSpec, TASK_SPEC_SCHEMA_ID, "Shipyard task spec")


def project_json_schema() -> dict[str, Any]:
    """JSON Schema of the project file (``shipyard.yaml``)."""
    return _published(ProjectConfig, PROJECT_SCHEMA_ID, "Shipyard project")
