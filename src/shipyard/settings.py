"""One typed settings object, read from the environment (prefix ``SHIPYARD_``).

Settings are created by entry points and passed down; nothing reads the environment elsewhere.
``env=production`` refuses insecure configuration instead of running with it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shipyard.errors import ConfigError

MIN_SECRET_KEY_LENGTH = 32
# Countries with national-id recognizers (shipyard.spec.pii.COUNTRY_ENTITIES; a test keeps
# both in step): listed here so a typo fails at start-up without loading the detectors.
PiiCountry = Literal["US", "GB", "ES", "IT", "DE", "PL", "FI", "SE", "IN", "AU", "SG", "CA"]

OPENAI_BASE_URL = "https://api.openai.com/v1"
# Hosts a provider type may use without being listed in SHIPYARD_PROVIDER_HOSTS: the vendor's own.
_OFFICIAL_HOSTS: dict[str, tuple[str, ...]] = {
    "openai": ("api.openai.com",),
    "azure_openai": ("*.openai.azure.com",),
    "openai_compatible": (),
}


class ModelPrice(BaseModel):
    """Price of one model, in the account's currency per 1,000 tokens."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input_per_1k: float = Field(ge=0)
    output_per_1k: float = Field(ge=0)


class ProviderSettings(BaseModel):
    """One LLM account and endpoint (an entry of ``SHIPYARD_PROVIDERS``). The key lives only
    here, as a SecretStr: specs and requests name a provider, never carry credentials."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["openai", "azure_openai", "openai_compatible"]
    base_url: str | None = Field(
        default=None,
        description="API root; azure_openai: the resource endpoint. Default for openai: "
        + OPENAI_BASE_URL,
    )
    api_key: SecretStr | None = None
    api_version: str | None = Field(default=None, description="azure_openai: API version")
    deployments: dict[str, str] = Field(
        default={}, description="azure_openai: model name -> deployment name"
    )
    connect_timeout: float = Field(default=5, gt=0)
    read_timeout: float = Field(default=60, gt=0)
    max_retries: int = Field(default=2, ge=0, le=10)
    backoff_base: float = Field(default=0.5, ge=0)
    backoff_max: float = Field(default=8, ge=0)
    breaker_failures: int = Field(default=5, ge=1)
    breaker_reset_seconds: float = Field(default=30, gt=0)
    prices: dict[str, ModelPrice] = Field(default={}, description="model name -> price")

    @property
    def resolved_base_url(self) -> str | None:
        if self.base_url is None and self.type == "openai":
            return OPENAI_BASE_URL
        return self.base_url


class BudgetSettings(BaseModel):
    """One spending limit (an entry of ``SHIPYARD_BUDGETS``): a tenant's chat-model runs of a
    task (or ``*``: any tenant / all its tasks) per UTC day or month. A null limit is unchecked."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tenant: str = Field(min_length=1, description="Tenant slug, or '*' for every tenant")
    task: str = Field(min_length=1, description="Task name, or '*' for all of a tenant's tasks")
    period: Literal["day", "month"]
    max_cost: float | None = Field(default=None, ge=0)
    max_tokens: int | None = Field(default=None, ge=0)


class RateLimitSettings(BaseModel):
    """Request and concurrency limits per API key and per tenant (``SHIPYARD_RATE_LIMITS``);
    a null limit is not enforced. Shared across API processes when ``SHIPYARD_REDIS_URL`` is
    set, per process otherwise."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key_rpm: int | None = Field(default=None, ge=1, description="Requests per minute per key")
    tenant_rpm: int | None = Field(default=None, ge=1, description="Requests/minute per tenant")
    key_concurrent_runs: int | None = Field(default=None, ge=1)
    tenant_concurrent_runs: int | None = Field(default=None, ge=1)


# Signature algorithms an OIDC token may use: public-key ones only. HS* would let anyone who
# knows the shared secret (or, by confusion, the public key) mint tokens; "none" is unsigned.
ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
_LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


def is_idp_url(url: str) -> bool:
    """An identity provider endpoint Shipyard will fetch: https, or http on this machine."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    loopback = parts.scheme == "http" and host in _LOOPBACK_HOSTS
    return bool(host) and (parts.scheme == "https" or loopback)


class OidcSettings(BaseModel):
    """Sign-in for people with bearer JWTs from an OIDC identity provider (``SHIPYARD_OIDC``,
    JSON). Roles and access groups come from role bindings, never from the token itself."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    issuer: str = Field(min_length=1, description="Expected `iss`, exactly as the IdP writes it")
    audience: str = Field(min_length=1, description="Expected `aud` (this API's client id)")
    jwks_url: str | None = Field(default=None, description="The IdP's JWKS endpoint (https)")
    jwks_file: Path | None = Field(default=None, description="A JWKS JSON file, read at start")
    discovery: bool = Field(
        default=False,
        description="Find the JWKS endpoint in {issuer}/.well-known/openid-configuration",
    )
    algorithms: list[str] = Field(default=["RS256", "ES256"], min_length=1)
    tenant_claim: str = Field(default="tenant", min_length=1, description="Claim naming the tenant")
    tenant: str | None = Field(default=None, description="Fixed tenant slug for every token")
    groups_claim: str = Field(default="groups", min_length=1)
    leeway_seconds: int = Field(default=30, ge=0, le=300)
    jwks_cache_seconds: int = Field(default=300, ge=1, description="Refetch the JWKS after this")
    jwks_min_refresh_seconds: int = Field(
        default=60, ge=0, description="At most one JWKS fetch per this many seconds"
    )
    jwks_timeout_seconds: float = Field(default=5, gt=0, le=60)
    jwks_max_bytes: int = Field(default=262_144, ge=1024, le=4_194_304)

    @model_validator(mode="after")
    def _check(self) -> OidcSettings:
        sources = [self.jwks_url is not None, self.jwks_file is not None, self.discovery]
        if sum(sources) != 1:
            raise ConfigError(
                "SHIPYARD_OIDC: set exactly one of jwks_url, jwks_file and discovery: true"
            )
        if self.discovery and not is_idp_url(self.issuer):
            raise ConfigError(
                "SHIPYARD_OIDC: discovery needs an https issuer (http only for localhost)"
            )
        refused = sorted(set(self.algorithms) - ASYMMETRIC_ALGORITHMS)
        if refused:
            allowed = ", ".join(sorted(ASYMMETRIC_ALGORITHMS))
            raise ConfigError(
                f"SHIPYARD_OIDC: algorithm {refused[0]!r} is not accepted; use public-key "
                f"algorithms only ({allowed})"
            )
        if self.jwks_url is not None and not is_idp_url(self.jwks_url):
            raise ConfigError(
                "SHIPYARD_OIDC: jwks_url must be an https URL (http only for localhost)"
            )
        return self


def _host_allowed(host: str, patterns: list[str] | tuple[str, ...]) -> bool:
    """``host`` (lowercase) equals a pattern, or ends with ``.suffix`` for ``*.suffix``."""
    for raw in patterns:
        pattern = raw.lower().rstrip(".")
        if host == pattern or (pattern.startswith("*.") and host.endswith(pattern[1:])):
            return True
    return False


def check_provider(name: str, provider: ProviderSettings, allowed_hosts: list[str]) -> None:
    """Refuse a provider whose endpoint is not allowed: a spec or a mistaken setting must not
    send a key (or requests from inside the network) to an arbitrary host (SSRF / key leak)."""
    where = f"SHIPYARD_PROVIDERS[{name!r}]"
    if not re.fullmatch(r"[a-z][a-z0-9_-]{0,62}", name):
        raise ConfigError(f"{where}: use lowercase letters, digits, '-' or '_' (as in specs)")
    url = provider.resolved_base_url
    if url is None:
        raise ConfigError(f"{where}: base_url is required for type {provider.type}")
    parts = urlsplit(url)
    host = (parts.hostname or "").rstrip(".")
    if parts.scheme not in {"http", "https"} or not host:
        raise ConfigError(f"{where}: base_url must be an http(s) URL with a host")
    if not _host_allowed(host, [*_OFFICIAL_HOSTS[provider.type], *allowed_hosts]):
        raise ConfigError(
            f"{where}: host {host!r} is not in SHIPYARD_PROVIDER_HOSTS; "
            "add it there to allow sending requests and the key to it"
        )
    if provider.type == "azure_openai" and not provider.api_version:
        raise ConfigError(f"{where}: api_version is required for type azure_openai")
    if provider.type == "openai" and provider.api_key is None:
        raise ConfigError(f"{where}: api_key is required for type openai")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SHIPYARD_", extra="ignore")

    env: Literal["development", "production"] = "development"
    project_dir: Path = Field(default=Path("."), description="Folder holding shipyard.yaml")
    data_dir: Path | None = Field(
        default=None, description="State folder; default <project_dir>/.shipyard"
    )
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default SQLite in data_dir"
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description="Key for hashing API keys; generated into data_dir in development",
    )
    audit_signing_key: SecretStr | None = Field(
        default=None,
        description="Ed25519 private key (PKCS8 PEM or base64 of the raw 32 bytes) that signs "
        "audit checkpoints",
    )
    host: str = "127.0.0.1"
    port: int = 8000
    max_request_bytes: int = Field(default=1_048_576, ge=1024)
    max_upload_bytes: int = Field(
        default=50 * 1_048_576, ge=1024, description="Largest document upload request"
    )
    max_document_bytes: int = Field(
        default=20 * 1_048_576, ge=1024, description="Largest single document accepted"
    )
    jobs: Literal["inprocess", "celery"] = Field(
        default="inprocess", description="Where background jobs run: in the API process or Celery"
    )
    broker_url: str | None = Field(
        default=None, description="Celery broker, e.g. redis://localhost:6379/0 or amqp://..."
    )
    broker_visibility_timeout: int = Field(
        default=3600,
        ge=1,
        description="Redis broker: seconds before an unacknowledged job is handed out again",
    )
    retention_interval_seconds: int = Field(
        default=3600,
        ge=0,
        description="Seconds between scheduled retention purges (API thread or Celery beat); "
        "0 disables the schedule",
    )
    pending_sweep_seconds: int = Field(
        default=600,
        ge=0,
        description="Celery: seconds between sweeps that re-publish documents pending for "
        "longer than that (published while the broker was down); 0 disables the sweep",
    )
    audit_checkpoint_interval_seconds: int = Field(
        default=3600,
        ge=0,
        description="Seconds between scheduled signed checkpoints of the audit chain head (API "
        "thread or Celery beat), when audit_signing_key is set; 0 disables the schedule",
    )
    public_api_docs: bool = Field(
        default=True,
        description="Serve /openapi.json, /docs and /redoc to anyone; false: /openapi.json "
        "needs an API key (or token) and the HTML docs are off",
    )
    log_level: str = "INFO"
    log_json: bool = True
    otel_exporter: Literal["none", "console", "otlp"] = "none"
    otel_endpoint: str | None = None
    service_name: str = "shipyard"
    trust_traceparent: bool = Field(
        default=False,
        description="Continue the caller's W3C trace (only behind a trusted gateway)",
    )
    model_threads: int = Field(default=0, ge=0, description="ONNX threads; 0 = runtime default")
    providers: dict[str, ProviderSettings] = Field(
        default={}, description="LLM providers by name (JSON), referenced by specs' model routes"
    )
    provider_hosts: list[str] = Field(
        default=[],
        description="Hosts LLM providers may use besides the vendors' own ('*.example.com' ok)",
    )

    budgets: list[BudgetSettings] = Field(
        default=[], description="Spending limits on chat-model runs (JSON list)"
    )
    local_llm: bool = Field(
        default=False,
        description="Serve routes to local/local-llm with the bundled demo model (SmolLM2)",
    )
    max_stream_chars: int = Field(
        default=20_000, ge=1, description="Most characters a streamed reply may send"
    )
    rate_limits: RateLimitSettings = Field(
        default=RateLimitSettings(),
        description="Per-key and per-tenant requests per minute and concurrent runs (JSON)",
    )
    redis_url: str | None = Field(
        default=None,
        description="Redis shared by API processes for rate limits, e.g. redis://host:6379/0",
    )
    pii_countries: list[PiiCountry] = Field(
        default=["US", "GB", "ES", "IT"],
        description="Countries whose national ids PII screening detects (docs/pii.md)",
    )
    oidc: OidcSettings | None = Field(
        default=None,
        description="OIDC/JWT sign-in for people (JSON): issuer, audience, jwks_url or jwks_file",
    )

    @model_validator(mode="after")
    def _check_providers(self) -> Settings:
        for name, provider in self.providers.items():
            check_provider(name, provider, self.provider_hosts)
        return self

    @model_validator(mode="after")
    def _refuse_insecure_production(self) -> Settings:
        if self.env != "production":
            return self
        key = self.secret_key.get_secret_value() if self.secret_key else ""
        if len(key) < MIN_SECRET_KEY_LENGTH:
            raise ConfigError(
                "SHIPYARD_SECRET_KEY must be set to at least "
                f"{MIN_SECRET_KEY_LENGTH} characters when SHIPYARD_ENV=production"
            )
        if self.database_url is None:
            raise ConfigError("SHIPYARD_DATABASE_URL must be set when SHIPYARD_ENV=production")
        return self

    @property
    def state_dir(self) -> Path:
        return self.data_dir if self.data_dir is not None else self.project_dir / ".shipyard"

    @property
    def artifacts_dir(self) -> Path:
        return self.state_dir / "artifacts"

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.state_dir / 'shipyard.db').resolve()}"
