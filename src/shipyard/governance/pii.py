"""A task's PII policy applied to a run's input: block it, or redact it reversibly or not.

Redaction replaces each finding in the string input fields by a typed placeholder,
``<EMAIL_ADDRESS_1>``, ``<EMAIL_ADDRESS_2>``, ...; the same value gets the same placeholder
everywhere in one run. The task runs on the redacted text, and only the redacted text is
stored or hashed into the audit chain. The same run's :class:`Redactor` then redacts the
passages retrieved for it before a model sees them, and the run's output before it is stored,
so personal data in documents neither leaves for a provider nor lands in a run. When the spec
names ``reveal_roles``, the placeholder -> original map is sealed (Fernet: AES-128-CBC +
HMAC-SHA256, with a key derived from the server secret by HKDF-SHA256) and bound to the run's
id, so a sealed map copied onto another run does not open. Without reveal roles no original is
kept anywhere: the redaction is irreversible.

Nothing here logs or raises with a value in it: problems name fields and entity types only.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from shipyard.errors import FieldProblem, InvalidInput
from shipyard.spec import FieldSpec, TaskSpec

if TYPE_CHECKING:  # Presidio (and spaCy under it) load on first use, not at start-up
    from shipyard.governance.pii_recognizers import Finding, PiiDetector

__all__ = [
    "PiiBlocked",
    "PiiScreen",
    "Redaction",
    "Redactor",
    "VaultError",
    "restore",
    "string_fields",
]

_VAULT_INFO: Final = b"shipyard pii vault v1"
# Passages reach a chat model HTML-escaped (providers/llm/prompts.py), so a reply may quote a
# placeholder as ``&lt;EMAIL_ADDRESS_1&gt;``: both spellings are restored.
_PLACEHOLDER = re.compile(r"(?:<|&lt;)([A-Z][A-Z0-9_]{1,39}_\d{1,6})(?:>|&gt;)")
_CITATION_TEXT: Final = frozenset({"quote", "title"})


@dataclass
class PiiBlocked(InvalidInput):
    """An input field holds personal data and the task's policy is ``block``."""

    status: int = 422
    slug: str = "pii-blocked"
    title: str = "Personal data not accepted"


class VaultError(Exception):
    """A sealed map does not open with this server's secret for this run."""


@dataclass
class Redaction:
    """The input as the task may see it and, with policy ``redact``, the run's redactor (its
    counts and originals; it goes on with the run's passages and output)."""

    data: dict[str, Any]
    redactor: Redactor | None = None

    @property
    def redacted(self) -> bool:
        return self.redactor is not None and bool(self.redactor.counts)


class Redactor:
    """One run's redaction, shared by its input, the passages retrieved for it and its output:
    the same value gets the same placeholder in all three, and the counts and originals add
    up over them (so one sealed map restores the whole run)."""

    def __init__(self, findings: Callable[[str], Sequence[Finding]], *, keep: bool) -> None:
        self._findings = findings
        self._keep = keep  # whether originals are kept (the task names reveal roles)
        self._by_value: dict[tuple[str, str], str] = {}
        self._counts: Counter[str] = Counter()
        self._numbers: Counter[str] = Counter()

    def _placeholder_for(self, entity: str, value: str) -> str:
        self._counts[entity] += 1
        known = self._by_value.get((entity, value))
        if known is None:
            self._numbers[entity] += 1
            known = self._by_value[(entity, value)] = f"<{entity}_{self._numbers[entity]}>"
        return known

    def text(self, text: str) -> str:
        """``text`` with every finding replaced by its placeholder."""
        return _replace(text, self._findings(text), self._placeholder_for)

    def fields(self, specs: Mapping[str, FieldSpec], values: Mapping[str, Any]) -> dict[str, Any]:
        """``values`` (a run's input or output) with the free text redacted: string fields,
        lists of strings and the quotes and titles of citations. Enum values are the spec's
        own words, and ids, offsets and sources must keep pointing at the documents: those
        stay as they are."""
        redacted = dict(values)
        for name, field_spec in specs.items():
            value = values.get(name)
            if field_spec.type == "string" and isinstance(value, str):
                redacted[name] = self.text(value)
            elif (
                field_spec.type == "list"
                and field_spec.items == "string"
                and isinstance(value, list)
            ):
                redacted[name] = [self.text(v) if isinstance(v, str) else v for v in value]
            elif field_spec.type == "citations" and isinstance(value, list):
                redacted[name] = [self._citation(item) for item in value]
        return redacted

    def _citation(self, citation: Any) -> Any:
        if not isinstance(citation, dict):
            return citation
        return {
            key: self.text(item) if key in _CITATION_TEXT and isinstance(item, str) else item
            for key, item in citation.items()
        }

    @property
    def counts(self) -> dict[str, int]:
        """Findings so far by entity type (every occurrence counts)."""
        return dict(sorted(self._counts.items()))

    @property
    def originals(self) -> dict[str, str]:
        """Placeholder -> original, when the task keeps them; else empty."""
        if not self._keep:
            return {}
        return {placeholder: value for (_, value), placeholder in self._by_value.items()}


def string_fields(spec: TaskSpec, data: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """(path, text) of every free-text input value: string fields and lists of strings (enum
    values are the spec's own words, not the caller's, and are not screened)."""
    for name, field_spec in spec.input.items():
        value = data.get(name)
        if field_spec.type == "string" and isinstance(value, str):
            yield f"input.{name}", value
        elif field_spec.type == "list" and field_spec.items == "string" and isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, str):
                    yield f"input.{name}.{index}", item


def _replace(
    text: str, findings: Sequence[Finding], placeholder_for: Callable[[str, str], str]
) -> str:
    parts, cursor = [], 0
    for finding in findings:
        parts.append(text[cursor : finding.start])
        parts.append(placeholder_for(finding.entity, text[finding.start : finding.end]))
        cursor = finding.end
    parts.append(text[cursor:])
    return "".join(parts)


def restore(value: Any, originals: Mapping[str, str]) -> Any:
    """``value`` (any JSON) with every known placeholder in its strings put back."""
    if isinstance(value, str):
        return _PLACEHOLDER.sub(lambda m: originals.get(f"<{m.group(1)}>", m.group(0)), value)
    if isinstance(value, list):
        return [restore(item, originals) for item in value]
    if isinstance(value, dict):
        return {key: restore(item, originals) for key, item in value.items()}
    return value


class PiiScreen:
    """Applies ``spec.pii`` to validated input; seals and opens the originals of a run."""

    def __init__(self, countries: Sequence[str], secret: bytes) -> None:
        self._countries = tuple(countries)
        self._detector: PiiDetector | None = None
        self._lock = threading.Lock()
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_VAULT_INFO).derive(secret)
        self._fernet = Fernet(base64.urlsafe_b64encode(key))

    @property
    def detector(self) -> PiiDetector:
        """The recognizers, built on the first screened run (importing Presidio takes ~1 s)."""
        with self._lock:
            if self._detector is None:
                from shipyard.governance.pii_recognizers import PiiDetector

                self._detector = PiiDetector(self._countries)
            return self._detector

    def _findings(self, spec: TaskSpec, text: str) -> list[Finding]:
        return self.detector.detect(text, spec.pii.entities, spec.pii.recognizers)

    def screen(self, spec: TaskSpec, data: dict[str, Any]) -> Redaction:
        """The input as the task may see it. ``allow``: unchanged; ``block``: raises
        :class:`PiiBlocked` naming each field and entity type; ``redact``: placeholders."""
        policy = spec.pii.policy
        if policy == "allow":
            return Redaction(data)
        if policy == "block":
            problems = []
            for path, text in string_fields(spec, data):
                kinds = sorted({finding.entity for finding in self._findings(spec, text)})
                if kinds:
                    problems.append(
                        FieldProblem(
                            path, f"contains personal data ({', '.join(kinds)}); not accepted"
                        )
                    )
            if problems:
                raise PiiBlocked(
                    f"task {spec.name} does not accept personal data in its input", problems
                )
            return Redaction(data)
        return self._redact(spec, data)

    def redactor(self, spec: TaskSpec) -> Redactor:
        """A fresh redactor for one run of ``spec`` (its placeholders numbered from 1)."""
        return Redactor(lambda text: self._findings(spec, text), keep=bool(spec.pii.reveal_roles))

    def _redact(self, spec: TaskSpec, data: dict[str, Any]) -> Redaction:
        redactor = self.redactor(spec)
        return Redaction(redactor.fields(spec.input, data), redactor)

    def seal(self, run_id: str, originals: Mapping[str, str]) -> str:
        """The originals of run ``run_id``, encrypted and authenticated."""
        payload = json.dumps({"run": run_id, "originals": dict(originals)}, ensure_ascii=False)
        return self._fernet.encrypt(payload.encode()).decode("ascii")

    def open(self, run_id: str, sealed: str) -> dict[str, str]:
        """The originals sealed for ``run_id``; :class:`VaultError` if they are not."""
        try:
            payload = json.loads(self._fernet.decrypt(sealed.encode("ascii")))
        except (InvalidToken, ValueError, UnicodeError):
            raise VaultError("the sealed originals do not open with this server's secret") from None
        if not isinstance(payload, dict) or payload.get("run") != run_id:
            raise VaultError("the sealed originals belong to another run")
        originals = payload.get("originals")
        if not isinstance(originals, dict):
            raise VaultError("the sealed originals are malformed")
        return {str(key): str(value) for key, value in originals.items()}
