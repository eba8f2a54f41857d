"""Composition root: Settings -> storage -> models -> services. Nothing is built at import."""

from __future__ import annotations

import os
import secrets
import threading
from dataclasses import dataclass, field
from functools import cached_property

from opentelemetry.sdk.trace import TracerProvider
from sqlalchemy import Engine

from shipyard.access.oidc import OidcVerifier
from shipyard.errors import ConfigError
from shipyard.governance.budgets import BudgetGuard
from shipyard.governance.checkpoints import load_private_key
from shipyard.governance.pii import PiiScreen
from shipyard.governance.ratelimit import RateGuard, make_limiter
from shipyard.kinds.answer import AnswerKind
from shipyard.kinds.base import KindRegistry, RunContext
from shipyard.kinds.classify import ClassifyKind
from shipyard.kinds.decide import DecideKind
from shipyard.kinds.extract import ExtractKind
from shipyard.kinds.generate import GenerateKind
from shipyard.knowledge.blobs import BlobStore
from shipyard.knowledge.index import KnowledgeIndex
from shipyard.knowledge.indexes import make_index
from shipyard.knowledge.types import Passage
from shipyard.observability.metrics import Metrics
from shipyard.observability.tracing import make_tracer_provider
from shipyard.providers.llm import ModelRouter
from shipyard.providers.llm.local_llm import with_local_llm
from shipyard.providers.local import ArtifactStore, MiniLMEmbedder
from shipyard.services.access import AccessService
from shipyard.services.admin import AdminService
from shipyard.services.audit import AuditService
from shipyard.services.bindings import BindingService
from shipyard.services.calibration import CalibrationService
from shipyard.services.evaluations import EvaluationService
from shipyard.services.ingestion import IngestionService
from shipyard.services.knowledge import KnowledgeService
from shipyard.services.retention import RetentionService
from shipyard.services.runs import RunService
from shipyard.services.runtime import TaskRuntime
from shipyard.services.training import TrainingService
from shipyard.settings import MIN_SECRET_KEY_LENGTH, Settings
from shipyard.spec import KnowledgeSpec, Project, load_project
from shipyard.storage import migrate
from shipyard.storage.db import SessionFactory, make_engine, make_session_factory

SECRET_FILE = "secret_key"  # noqa: S105 - a file name


def _secret_key(settings: Settings) -> bytes:
    """The configured secret, or (development only) one generated once into the state dir."""
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value().encode()
    path = settings.state_dir / SECRET_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written whole to a private temp file, then hard-linked into place: the link fails
        # if another process got there first, and nobody ever reads a half-written secret.
        temp = path.with_name(f".{SECRET_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(secrets.token_urlsafe(48))
        try:
            os.link(temp, path)
        except FileExistsError:
            pass
        finally:
            temp.unlink()
    value = path.read_text(encoding="ascii").strip()
    if len(value) < MIN_SECRET_KEY_LENGTH:
        raise ConfigError(f"{path} holds no usable secret key; delete it to generate a new one")
    return value.encode()


@dataclass
class Container:
    settings: Settings
    _embedder: MiniLMEmbedder | None = field(default=None, init=False)
    _embedder_lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _llm: ModelRouter | None = field(default=None, init=False)
    _llm_lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    @cached_property
    def project(self) -> Project:
        return load_project(self.settings.project_dir, kinds=self.kinds.names())

    @cached_property
    def engine(self) -> Engine:
        return make_engine(self.settings.resolved_database_url)

    @cached_property
    def sessions(self) -> SessionFactory:
        return make_session_factory(self.engine)

    @cached_property
    def metrics(self) -> Metrics:
        return Metrics()

    @cached_property
    def tracer_provider(self) -> TracerProvider:
        return make_tracer_provider(self.settings)

    def embedder(self) -> MiniLMEmbedder:
        with self._embedder_lock:
            if self._embedder is None:
                self._embedder = MiniLMEmbedder(threads=self.settings.model_threads)
            return self._embedder

    @cached_property
    def kinds(self) -> KindRegistry:
        registry = KindRegistry()
        registry.register(ClassifyKind(self.embedder))
        registry.register(AnswerKind(self._retrieve_for_run, self.embedder))
        # The router is handed over as a callable: built on the first chat-model run only.
        local_llm = self.settings.local_llm
        registry.register(ExtractKind(lambda: self.llm, local_llm=local_llm))
        registry.register(
            GenerateKind(
                lambda: self.llm,
                local_llm=local_llm,
                max_stream_chars=self.settings.max_stream_chars,
                retrieve=self._retrieve_for_run,
            )
        )
        registry.register(DecideKind(self.embedder, lambda: self.llm, local_llm=local_llm))
        return registry

    @property
    def llm(self) -> ModelRouter:
        """Built on first use, once, under a lock: two concurrent first runs must not build
        two routers (and start the bundled demo model twice)."""
        with self._llm_lock:
            if self._llm is None:
                router = ModelRouter.from_settings(self.settings, metrics=self.metrics)
                if self.settings.local_llm:
                    router = with_local_llm(router)  # the bundled demo model, in-process
                self._llm = router
            return self._llm

    def _retrieve_for_run(
        self, context: RunContext, knowledge: KnowledgeSpec, question: str
    ) -> list[Passage]:
        return self.knowledge.retrieve(
            context.tenant_id,
            context.groups,
            knowledge.collections,
            question,
            k=knowledge.top_k,
            candidates=knowledge.candidates,
        )

    @cached_property
    def knowledge_index(self) -> KnowledgeIndex:
        return make_index(self.engine)

    @cached_property
    def blobs(self) -> BlobStore:
        return BlobStore(self.settings.state_dir / "blobs")

    @cached_property
    def knowledge(self) -> KnowledgeService:
        return KnowledgeService(
            self.sessions, self.knowledge_index, self.blobs, self.embedder, self.metrics
        )

    @cached_property
    def ingestion(self) -> IngestionService:
        return IngestionService(
            self.sessions,
            self.knowledge_index,
            self.blobs,
            self.embedder,
            max_document_bytes=self.settings.max_document_bytes,
            metrics=self.metrics,
        )

    @cached_property
    def retention(self) -> RetentionService:
        return RetentionService(self.sessions, self.project, self.knowledge_index, self.blobs)

    @cached_property
    def artifacts(self) -> ArtifactStore:
        return ArtifactStore(self.settings.artifacts_dir)

    @cached_property
    def access(self) -> AccessService:
        return AccessService(
            self.sessions, _secret_key(self.settings), oidc=self.oidc, bindings=self.bindings
        )

    @cached_property
    def bindings(self) -> BindingService:
        """Roles and groups granted to OIDC users and groups."""
        return BindingService(self.sessions)

    @cached_property
    def oidc(self) -> OidcVerifier | None:
        """Sign-in with OIDC bearer tokens, when ``SHIPYARD_OIDC`` is set."""
        oidc = self.settings.oidc
        return OidcVerifier.from_settings(oidc) if oidc is not None else None

    @cached_property
    def admin(self) -> AdminService:
        return AdminService(self.sessions, self.access, self.bindings, _secret_key(self.settings))

    @cached_property
    def audit(self) -> AuditService:
        return AuditService(self.sessions)

    @cached_property
    def training(self) -> TrainingService:
        return TrainingService(self.sessions, self.project, self.kinds, self.artifacts)

    @cached_property
    def runtime(self) -> TaskRuntime:
        return TaskRuntime(self.sessions, self.project, self.kinds, self.artifacts, self.metrics)

    @cached_property
    def calibration(self) -> CalibrationService:
        return CalibrationService(self.project, self.runtime)

    @cached_property
    def evaluations(self) -> EvaluationService:
        return EvaluationService(self.sessions, self.project, self.runtime)

    @cached_property
    def runs(self) -> RunService:
        return RunService(
            self.sessions,
            self.project,
            self.runtime,
            self.metrics,
            self.tracer_provider.get_tracer("shipyard"),
            budgets=BudgetGuard(self.settings.budgets, self.sessions, self.metrics),
            pii=self.pii,
        )

    @cached_property
    def pii(self) -> PiiScreen:
        return PiiScreen(self.settings.pii_countries, _secret_key(self.settings))

    @cached_property
    def rate_limits(self) -> RateGuard:
        # Redis when configured: API processes behind one load balancer share the counts.
        return RateGuard(self.settings.rate_limits, make_limiter(self.settings.redis_url))

    def upgrade_database(self) -> None:
        migrate.upgrade(self.engine)

    def ensure_default_tenant(self) -> None:
        self.access.ensure_tenant(self.project.config.default_tenant)

    def close(self) -> None:
        if self._llm is not None:  # only if it was ever built
            self._llm.close()
        if "rate_limits" in self.__dict__:  # only if it was ever built
            self.rate_limits.limiter.close()
        self.tracer_provider.shutdown()
        self.engine.dispose()


def build(settings: Settings) -> Container:
    if settings.audit_signing_key is not None:
        # Every entry point (API, CLI, worker, beat) stops on a key that does not load, rather
        # than the first scheduled checkpoint failing where nobody looks.
        load_private_key(settings.audit_signing_key.get_secret_value())
    return Container(settings)
