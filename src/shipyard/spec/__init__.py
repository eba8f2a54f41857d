"""Task specs: the format (models), loading from YAML, JSON Schema and typed I/O models."""

from shipyard.spec.loader import (
    PROJECT_FILE,
    Project,
    find_project_dir,
    load_project,
    load_task_spec,
)
from shipyard.spec.model import (
    DEFAULT_KINDS,
    DatasetSpec,
    EvaluationSpec,
    FieldSpec,
    HypothesisSpec,
    KnowledgeSpec,
    KpiSpec,
    ModelRoute,
    PolicySpec,
    ProjectConfig,
    RouteEntry,
    TaskSpec,
    TrainingSpec,
)
from shipyard.spec.schema import project_json_schema, spec_json_schema
from shipyard.spec.thresholds import Threshold, parse_threshold
from shipyard.spec.typed_io import input_model, output_model

__all__ = [
    "DEFAULT_KINDS",
    "PROJECT_FILE",
    "DatasetSpec",
    "EvaluationSpec",
    "FieldSpec",
    "HypothesisSpec",
    "KnowledgeSpec",
    "KpiSpec",
    "ModelRoute",
    "PolicySpec",
    "Project",
    "ProjectConfig",
    "RouteEntry",
    "TaskSpec",
    "Threshold",
    "TrainingSpec",
    "find_project_dir",
    "input_model",
    "load_project",
    "load_task_spec",
    "output_model",
    "parse_threshold",
    "project_json_schema",
    "spec_json_schema",
]
