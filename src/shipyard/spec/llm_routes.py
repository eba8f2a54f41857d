"""Spec rules of tasks served by chat models (their own module: spec/model.py must stay small).

* kind generate may declare a ``citations`` output only with a ``knowledge`` block: citations
  are then built from retrieved passages the reply references, never written by the model;
* kinds extract and decide on a chat-model route (any provider but ``local``) need a
  ``prompt``: there is no trained model to fall back on; and their ``confidence`` output, if
  declared, must not be required: a chat model gives no calibrated confidence.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Final

from shipyard.spec.constraints import Problem

if TYPE_CHECKING:  # model.py imports this module; the names are only needed for typing
    from shipyard.spec.model import FieldSpec, TaskSpec

CITATIONS: Final = "citations"
# The offline model of each kind that can also run on a chat model (the kinds' LOCAL_MODEL;
# tests/kinds/test_llm_routes.py checks they agree). Any other route is a chat model.
OFFLINE_MODELS: Final = {"extract": "crf-span-tagger", "decide": "minilm-tfidf-logreg"}
PROMPTED_KINDS: Final = frozenset(OFFLINE_MODELS)


def generate_output(output: Mapping[str, FieldSpec]) -> list[Problem]:
    """Free text (a single ``text`` string) or typed fields filled by structured output, plus
    at most one ``citations`` list (checked against ``knowledge`` by :func:`route_problems`)."""
    return [
        ((name, "type"), f"kind generate fills citations only in an output named '{CITATIONS}'")
        for name, field in output.items()
        if field.type == "citations" and name != CITATIONS
    ]


def route_problems(spec: TaskSpec) -> list[Problem]:
    """Rules that need more of the spec than its outputs."""
    problems: list[Problem] = []
    cited = spec.output.get(CITATIONS)
    cites = cited is not None and cited.type == "citations"
    if spec.kind == "generate" and cites and spec.knowledge is None:
        problems.append(
            (
                ("output", CITATIONS),
                "kind generate can cite only retrieved passages: add a 'knowledge' block "
                "(or use kind answer)",
            )
        )
    offline = OFFLINE_MODELS.get(spec.kind)
    on_chat_model = offline is not None and (spec.model.provider, spec.model.model) != (
        "local",
        offline,
    )
    if on_chat_model and spec.prompt is None:
        problems.append(
            ((), f"kind {spec.kind} on a chat-model route needs a 'prompt' (system, user)")
        )
    confidence = spec.output.get("confidence")
    if on_chat_model and confidence is not None and confidence.required:
        # The published schema must match the runs: a chat model gives no calibrated
        # confidence, so these runs carry none (and decide runs always go to review).
        problems.append(
            (
                ("output", "confidence", "required"),
                "a chat model gives no calibrated confidence: declare it 'required: false'",
            )
        )
    return problems
