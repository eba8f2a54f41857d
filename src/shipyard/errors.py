"""One exception tree for the whole platform.

The API renders every :class:`ShipyardError` as RFC 9457 problem+json, the CLI prints its
one-line message and exits 2 for usage/data errors. Vendor and library errors are translated
into this tree at the boundary where they occur, by type, never by parsing message text.
"""

from __future__ import annotations

from dataclasses import dataclass, field

PROBLEM_BASE = "https://shipyard.dev/problems/"


@dataclass(frozen=True)
class FieldProblem:
    """One problem with one field of a request, a spec or a data file."""

    field: str
    message: str
    file: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        where = ""
        if self.file:
            where = f"{self.file}:{self.line}: " if self.line else f"{self.file}: "
        return f"{where}{self.field}: {self.message}"


@dataclass
class ShipyardError(Exception):
    """Base of every error Shipyard raises on purpose."""

    detail: str
    problems: list[FieldProblem] = field(default_factory=list)

    status: int = 500
    slug: str = "internal-error"
    title: str = "Internal error"

    def __post_init__(self) -> None:
        super().__init__(self.detail)

    @property
    def type_uri(self) -> str:
        return PROBLEM_BASE + self.slug

    def __str__(self) -> str:
        if not self.problems:
            return self.detail
        return self.detail + "\n" + "\n".join(f"  {p}" for p in self.problems)


@dataclass
class InvalidInput(ShipyardError):
    """A request body, query parameter or CLI argument is not acceptable."""

    status: int = 422
    slug: str = "invalid-input"
    title: str = "Invalid input"


@dataclass
class SpecInvalid(ShipyardError):
    """A task spec or project file does not follow the spec format."""

    status: int = 422
    slug: str = "spec-invalid"
    title: str = "Invalid task spec"


@dataclass
class DataInvalid(ShipyardError):
    """A training or evaluation data file cannot be used."""

    status: int = 422
    slug: str = "data-invalid"
    title: str = "Invalid data file"


@dataclass
class NotFound(ShipyardError):
    """The object does not exist *for this caller* (other tenants' objects included)."""

    status: int = 404
    slug: str = "not-found"
    title: str = "Not found"


@dataclass
class Unauthenticated(ShipyardError):
    status: int = 401
    slug: str = "unauthenticated"
    title: str = "Authentication required"


@dataclass
class Forbidden(ShipyardError):
    status: int = 403
    slug: str = "forbidden"
    title: str = "Forbidden"


@dataclass
class PayloadTooLarge(ShipyardError):
    status: int = 413
    slug: str = "payload-too-large"
    title: str = "Request body too large"


@dataclass
class Conflict(ShipyardError):
    status: int = 409
    slug: str = "conflict"
    title: str = "Conflict"


@dataclass
class ModelNotReady(ShipyardError):
    """The task's model artifact is missing or does not match its recorded hash."""

    status: int = 503
    slug: str = "model-not-ready"
    title: str = "Model not ready"


@dataclass
class ConfigError(ShipyardError):
    """Settings or project configuration that Shipyard refuses to run with."""

    status: int = 500
    slug: str = "configuration-error"
    title: str = "Configuration error"


@dataclass
class InvalidModelOutput(ShipyardError):
    """A chat model's reply did not match the task's output schema, even after one repair
    attempt; ``problems`` name the offending fields. No partial output is ever returned."""

    status: int = 502
    slug: str = "invalid-model-output"
    title: str = "Invalid model output"


@dataclass
class LLMNotConfigured(ConfigError):
    """A task needs a chat model but no provider serves its route (the operator must
    configure one); 503 because the service is up but cannot serve this task yet."""

    status: int = 503
    slug: str = "provider-not-configured"
    title: str = "LLM provider not configured"


@dataclass
class LLMUnavailable(ShipyardError):
    """Every entry of a task's model route failed (timeouts, outages, rejections); the run
    is stored as failed. The detail never quotes provider responses or keys."""

    status: int = 503
    slug: str = "provider-unavailable"
    title: str = "Model provider unavailable"


@dataclass
class BudgetExceeded(ShipyardError):
    """A run would exceed a configured spending budget; ``retry_after`` is the number of
    seconds until the budget's period starts over."""

    retry_after: int | None = None
    status: int = 429
    slug: str = "budget-exceeded"
    title: str = "Budget exceeded"


@dataclass
class RateLimited(ShipyardError):
    """A key or tenant is over its requests-per-minute or concurrent-runs limit; the detail
    names which one, ``retry_after`` is the number of seconds to wait before trying again."""

    retry_after: int | None = None
    status: int = 429
    slug: str = "rate-limited"
    title: str = "Rate limited"
