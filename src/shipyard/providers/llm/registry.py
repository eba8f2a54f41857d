"""Build the configured providers from :class:`Settings`, each wrapped in the resilience policy.

This is the one way providers come into being: the settings were checked against the host
allow-list when they were loaded, and the credentials come from them alone.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from shipyard.providers.llm.openai_provider import OpenAIProvider, TokenProvider
from shipyard.providers.llm.resilience import (
    CircuitBreaker,
    Clock,
    ResilientProvider,
    RetryPolicy,
    Sleep,
)
from shipyard.settings import ProviderSettings, Settings


def resilient(
    name: str,
    settings: ProviderSettings,
    *,
    token_provider: TokenProvider | None = None,
    clock: Clock = time.monotonic,
    sleep: Sleep = time.sleep,
) -> ResilientProvider:
    """One provider with its retry policy and its own circuit breaker."""
    return ResilientProvider(
        OpenAIProvider(name, settings, token_provider=token_provider),
        policy=RetryPolicy(
            max_retries=settings.max_retries,
            backoff_base=settings.backoff_base,
            backoff_max=settings.backoff_max,
        ),
        breaker=CircuitBreaker(
            name,
            failure_threshold=settings.breaker_failures,
            reset_seconds=settings.breaker_reset_seconds,
            clock=clock,
        ),
        clock=clock,
        sleep=sleep,
    )


def build_providers(
    settings: Settings,
    *,
    token_providers: Mapping[str, TokenProvider] | None = None,
    clock: Clock = time.monotonic,
    sleep: Sleep = time.sleep,
) -> dict[str, ResilientProvider]:
    """Every provider of ``settings.providers`` by name. ``token_providers`` supplies Entra ID
    tokens to ``azure_openai`` providers configured without an api_key (composition root)."""
    tokens = token_providers or {}
    return {
        name: resilient(name, provider, token_provider=tokens.get(name), clock=clock, sleep=sleep)
        for name, provider in settings.providers.items()
    }
