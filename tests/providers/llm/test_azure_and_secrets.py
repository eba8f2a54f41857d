"""Azure OpenAI request shape (through the proxy, which maps Azure paths onto llama.cpp), and
the API key never showing up in reprs, error messages or logs."""

from __future__ import annotations

import json
import logging
import uuid

import pytest

from shipyard.providers.llm import (
    ChatMessage,
    ChatRequest,
    ModelRouter,
    ProviderError,
    ProviderRejected,
    RouteExhausted,
    build_providers,
)
from shipyard.settings import Settings
from shipyard.spec.model import ModelRoute
from tests.providers.llm.conftest import deadline, provider_settings
from tests.providers.llm.fault_proxy import Fault, FaultProxy

pytestmark = pytest.mark.llm

API_VERSION = "2024-10-21"


def hello() -> ChatRequest:
    return ChatRequest(messages=[ChatMessage("user", "Say hello.")], max_tokens=8)


def azure_settings(proxy: FaultProxy, key: str) -> Settings:
    return Settings(
        providers={
            "azure": {
                "type": "azure_openai",
                "base_url": proxy.url,
                "api_key": key,
                "api_version": API_VERSION,
                "deployments": {"gpt-4o-mini": "my-deploy"},
                "max_retries": 0,
            }
        },
        provider_hosts=["127.0.0.1"],
    )


def test_azure_request_shape_and_reply(proxy: FaultProxy) -> None:
    key = "azure-" + uuid.uuid4().hex
    router = ModelRouter(build_providers(azure_settings(proxy, key)))
    route = ModelRoute(provider="azure", model="gpt-4o-mini")

    routed = router.complete(route, hello(), deadline=deadline())

    (seen,) = proxy.requests
    assert seen.path == "/openai/deployments/my-deploy/chat/completions"
    assert seen.query == {"api-version": [API_VERSION]}
    assert seen.headers["api-key"] == key
    assert "authorization" not in seen.headers
    assert seen.body["max_completion_tokens"] == 8
    assert "max_tokens" not in seen.body
    assert routed.result.model == "gpt-4o-mini"  # the route's model name, for prices/metrics
    assert routed.result.usage.completion_tokens > 0


def test_compatible_server_gets_max_tokens_and_our_key_only(
    proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A key in the SDK's own environment variable must never reach a third-party server.
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-the-environment")
    settings = Settings(
        providers={"local": provider_settings(proxy.url + "/v1")}, provider_hosts=["127.0.0.1"]
    )
    router = ModelRouter(build_providers(settings))

    router.complete(ModelRoute(provider="local", model="m"), hello(), deadline=deadline())

    (seen,) = proxy.requests
    assert seen.body["max_tokens"] == 8
    assert "sk-from-the-environment" not in json.dumps(seen.headers)


def test_api_key_never_in_repr_errors_or_logs(
    proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    key = "sk-secret-" + uuid.uuid4().hex
    entry = provider_settings(proxy.url + "/v1", api_key=key, max_retries=1)
    monkeypatch.setenv("SHIPYARD_PROVIDERS", json.dumps({"local": entry}))
    monkeypatch.setenv("SHIPYARD_PROVIDER_HOSTS", '["127.0.0.1"]')
    caplog.set_level(logging.DEBUG)  # every logger, the SDK's and httpx's included
    settings = Settings()
    router = ModelRouter.from_settings(settings)
    provider = router.providers["local"]
    route = ModelRoute(provider="local", model="m")
    # Servers may echo the key back in error messages.
    proxy.push(
        Fault.error(401, message=f"Incorrect API key provided: {key}"),
        Fault.error(400, message=f"bad request for key {key}"),
        Fault.error(500, message=f"upstream failed for {key}"),
    )

    errors: list[ProviderError] = []
    for expected in (RouteExhausted, ProviderRejected):  # a 401 may fall back, a 400 never
        with pytest.raises(expected) as caught:
            router.complete(route, hello(), deadline=deadline())
        errors.append(caught.value)
    routed = router.complete(route, hello(), deadline=deadline())  # 500, then retried: ok

    assert proxy.requests[0].headers["authorization"] == f"Bearer {key}"  # it was sent...
    shown = [
        repr(settings),
        str(settings),
        settings.model_dump_json(),
        repr(settings.providers),
        repr(provider),
        repr(getattr(provider, "inner", None)),
        repr(router),
        repr(routed),
        *(str(e) for e in errors),
        *(repr(e) for e in errors),
        caplog.text,
    ]
    assert all(key not in text for text in shown)  # ...but never shown
    assert "authentication refused (HTTP 401)" in str(errors[0])
    assert "***" in str(errors[1])
