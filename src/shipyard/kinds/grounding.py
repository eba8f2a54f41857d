"""Kind ``generate`` with a ``knowledge`` block: retrieved passages in the prompt, citations out.

The retrieval query is the ``question`` input when the task declares one, else ``brief``, else
its first string input field. Passages reach the model only as quoted data
(:func:`quote_passages`), numbered, with an instruction to cite them as ``[n]``. Citations are
built from the markers found in the reply, and only for passages that were actually retrieved
for this caller: a marker without a passage is ignored, never turned into a citation. With a
PII policy the passages are redacted (:func:`redact_passages`) before the model sees them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any

from shipyard.errors import ConfigError
from shipyard.kinds.base import RunContext
from shipyard.knowledge.injection import INJECTION, INJECTION_DROPPED, INJECTION_RETRIEVED
from shipyard.knowledge.types import Passage
from shipyard.providers.llm import ChatMessage, quote_passages
from shipyard.providers.llm import Passage as QuotedPassage
from shipyard.spec import KnowledgeSpec, TaskSpec

Retrieve = Callable[[RunContext, KnowledgeSpec, str], list[Passage]]
QUERY_FIELDS = ("question", "brief")
CITATIONS_FIELD = "citations"
CITE_INSTRUCTION = (
    "Support your reply with the passages above and cite each passage you use by its number "
    "in square brackets, e.g. [1]. Do not cite anything else."
)
_MARKER = re.compile(r"\[(\d{1,3})\]")


def query_field(spec: TaskSpec) -> str:
    """The input the retrieval searches with: question, brief, or the first string field."""
    for name in QUERY_FIELDS:
        field = spec.input.get(name)
        if field is not None and field.type == "string":
            return name
    for name, field in spec.input.items():
        if field.type == "string":
            return name
    raise ConfigError(f"task {spec.name}: kind generate with knowledge needs a string input")


def passages_message(passages: Iterable[Passage]) -> ChatMessage:
    """The passages as quoted, numbered data, then how to cite them."""
    quoted = quote_passages(QuotedPassage(p.hit.text, p.title) for p in passages)
    return ChatMessage("user", f"{quoted}\n{CITE_INSTRUCTION}")


def cited_numbers(texts: Iterable[str], count: int) -> list[int]:
    """The passage numbers (1-based) referenced as ``[n]``, first mention first, in range."""
    found: list[int] = []
    for text in texts:
        for match in _MARKER.finditer(text):
            number = int(match.group(1))
            if 1 <= number <= count and number not in found:
                found.append(number)
    return found


def citations(output: Mapping[str, Any], passages: list[Passage]) -> list[dict[str, Any]]:
    """A Citation (spec/typed_io.py) per retrieved passage the reply's text fields cite; the
    quote is the whole chunk, at its offsets in the document."""
    texts = [value for value in output.values() if isinstance(value, str)]
    result = []
    for number in cited_numbers(texts, len(passages)):
        passage = passages[number - 1]
        hit = passage.hit
        result.append(
            {
                "document_id": hit.document_id,
                "source": passage.source,
                "title": passage.title,
                "chunk": hit.chunk_index,
                "quote": hit.text,
                "start": hit.start,
                "end": hit.end,
            }
        )
    return result


def redact_passages(passages: list[Passage], redact: Callable[[str], str] | None) -> list[Passage]:
    """The passages with the task's PII policy applied to their text and title: what the
    model is sent and what citations quote (ids and offsets still point at the document)."""
    if redact is None:
        return passages
    return [
        replace(
            passage,
            hit=replace(passage.hit, text=redact(passage.hit.text)),
            title=redact(passage.title),
        )
        for passage in passages
    ]


def screen_passages(
    spec: TaskSpec, passages: list[Passage]
) -> tuple[list[Passage], tuple[str, ...]]:
    """The passages the model may see and the run's injection flags: with ``injection: block``
    passages that read like an injection are left out (and the run says so)."""
    if not any(passage.flagged for passage in passages):
        return passages, ()
    if spec.injection == "block":
        kept = [passage for passage in passages if not passage.flagged]
        return kept, (INJECTION, INJECTION_RETRIEVED, INJECTION_DROPPED)
    return passages, (INJECTION, INJECTION_RETRIEVED)
