"""SHIPYARD_PROVIDERS parsing and the host allow-list (SSRF / key leak protection)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shipyard.errors import ConfigError
from shipyard.providers.llm import build_providers
from shipyard.settings import Settings


def settings(hosts: list[str] | None = None, **provider: Any) -> Settings:
    return Settings(providers={"p": provider}, provider_hosts=hosts or [])


def test_providers_are_read_from_json_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "SHIPYARD_PROVIDERS",
        json.dumps(
            {
                "openai": {
                    "type": "openai",
                    "api_key": "sk-x",
                    "prices": {"gpt-4o-mini": {"input_per_1k": 0.15, "output_per_1k": 0.6}},
                },
                "azure": {
                    "type": "azure_openai",
                    "base_url": "https://acme.openai.azure.com",
                    "api_key": "k",
                    "api_version": "2024-10-21",
                    "deployments": {"gpt-4o": "prod-gpt4o"},
                },
                "vllm": {"type": "openai_compatible", "base_url": "http://vllm.internal:8000/v1"},
            }
        ),
    )
    monkeypatch.setenv("SHIPYARD_PROVIDER_HOSTS", '["vllm.internal"]')

    loaded = Settings()

    assert set(loaded.providers) == {"openai", "azure", "vllm"}
    assert loaded.providers["openai"].resolved_base_url == "https://api.openai.com/v1"
    assert loaded.providers["openai"].prices["gpt-4o-mini"].output_per_1k == 0.6
    assert loaded.providers["azure"].deployments == {"gpt-4o": "prod-gpt4o"}
    assert loaded.providers["vllm"].max_retries == 2  # defaults apply
    assert set(build_providers(loaded)) == {"openai", "azure", "vllm"}


@pytest.mark.parametrize(
    ("provider", "hosts"),
    [
        ({"type": "openai", "api_key": "k"}, []),
        ({"type": "openai", "api_key": "k", "base_url": "https://api.openai.com/v1/"}, []),
        (
            {
                "type": "azure_openai",
                "base_url": "https://acme.openai.azure.com/",
                "api_key": "k",
                "api_version": "2024-10-21",
            },
            [],
        ),
        ({"type": "openai_compatible", "base_url": "http://127.0.0.1:8080/v1"}, ["127.0.0.1"]),
        ({"type": "openai_compatible", "base_url": "https://gpu3.llm.acme.com"}, ["*.acme.com"]),
        (
            {"type": "openai_compatible", "base_url": "http://Ollama.Local:11434/v1"},
            ["ollama.local"],
        ),
    ],
)
def test_allowed_hosts(provider: dict[str, Any], hosts: list[str]) -> None:
    settings(hosts, **provider)


@pytest.mark.parametrize(
    ("provider", "hosts", "fragment"),
    [
        ({"type": "openai_compatible", "base_url": "http://169.254.169.254/v1"}, [], "169.254"),
        (
            {"type": "openai_compatible", "base_url": "http://localhost:8080"},
            ["127.0.0.1"],
            "localhost",
        ),
        ({"type": "openai", "api_key": "k", "base_url": "https://evil.example/v1"}, [], "evil"),
        # userinfo trick: the host is evil.example, not api.openai.com
        (
            {"type": "openai", "api_key": "k", "base_url": "https://api.openai.com@evil.example/"},
            [],
            "evil",
        ),
        (
            {
                "type": "azure_openai",
                "base_url": "https://acme.openai.azure.com.evil.example",
                "api_key": "k",
                "api_version": "v",
            },
            [],
            "evil",
        ),
        # The vendor's own host is allowed only for its own type.
        ({"type": "openai_compatible", "base_url": "https://x.openai.azure.com"}, [], "azure"),
        ({"type": "openai_compatible", "base_url": "file:///etc/passwd"}, [], "http(s)"),
        ({"type": "openai_compatible"}, [], "base_url is required"),
        ({"type": "openai"}, [], "api_key is required"),
        (
            {"type": "azure_openai", "base_url": "https://a.openai.azure.com", "api_key": "k"},
            [],
            "api_version",
        ),
    ],
)
def test_refused_providers(provider: dict[str, Any], hosts: list[str], fragment: str) -> None:
    with pytest.raises(ConfigError) as caught:
        settings(hosts, **provider)

    assert fragment in str(caught.value)


def test_provider_names_must_be_usable_in_specs() -> None:
    with pytest.raises(ConfigError, match="lowercase"):
        Settings(providers={"My OpenAI": {"type": "openai", "api_key": "k"}})


def test_azure_without_key_needs_a_token_provider() -> None:
    loaded = settings(
        type="azure_openai", base_url="https://a.openai.azure.com", api_version="2024-10-21"
    )

    with pytest.raises(ConfigError, match="Entra ID"):
        build_providers(loaded)
    assert build_providers(loaded, token_providers={"p": lambda: "token"})["p"].name == "p"
