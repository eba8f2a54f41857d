"""One typed settings object, read from the environment (prefix ``SHIPYARD_``).

Settings are created by entry points and passed down; nothing reads the environment elsewhere.
``env=production`` refuses insecure configuration instead of running with it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shipyard.errors import ConfigError

MIN_SECRET_KEY_LENGTH = 32


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
