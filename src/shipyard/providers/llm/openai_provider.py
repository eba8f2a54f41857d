"""OpenAI, Azure OpenAI and any OpenAI-compatible server (vLLM, Ollama, llama.cpp), through the
official ``openai`` SDK.

One class serves the three provider types; what differs (how the client is built, which token
limit parameter the API takes) is a small table entry per type, not a branch in the call path.
Each call makes exactly one attempt (the SDK's own retries are off): retries, back-off and the
breaker live in :mod:`shipyard.providers.llm.resilience`. SDK exceptions are translated here,
by type, into :mod:`shipyard.providers.llm.errors`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import openai
from openai.types.chat import (
    ChatCompletion,
    ChatCompletionMessageParam,
    ChatCompletionStreamOptionsParam,
)
from openai.types.chat.completion_create_params import ResponseFormat

from shipyard.errors import ConfigError
from shipyard.providers.llm.errors import (
    ProviderError,
    ProviderRateLimited,
    ProviderRejected,
    ProviderTimeout,
    ProviderUnavailable,
)
from shipyard.providers.llm.resilience import parse_retry_after
from shipyard.providers.llm.types import (
    ChatMessage,
    ChatRequest,
    ChatResult,
    Deadline,
    StreamEnd,
    StreamEvent,
    TextDelta,
    Usage,
)
from shipyard.settings import ProviderSettings

TokenProvider = Callable[[], str]
"""Returns a fresh Microsoft Entra ID token (e.g. from ``azure-identity``) for Azure OpenAI."""

# Local servers ignore the key, but the SDK insists on one and would otherwise read
# OPENAI_API_KEY from the environment and send a real OpenAI key to a third-party host.
_NO_KEY = "no-key"
_MAX_MESSAGE = 300


def _timeout(settings: ProviderSettings) -> openai.Timeout:
    return openai.Timeout(settings.read_timeout, connect=settings.connect_timeout)


def _http_client(settings: ProviderSettings) -> openai.DefaultHttpxClient:
    # No redirects: the allow-list names the hosts a prompt and a key may go to, and a
    # redirect (307/308 resend the body; Azure's api-key header survives) would leave it.
    return openai.DefaultHttpxClient(follow_redirects=False, timeout=_timeout(settings))


def _key(settings: ProviderSettings) -> str | None:
    return settings.api_key.get_secret_value() if settings.api_key else None


def _openai_client(settings: ProviderSettings, _token: TokenProvider | None) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=settings.resolved_base_url,
        api_key=_key(settings) or _NO_KEY,
        max_retries=0,
        timeout=_timeout(settings),
        http_client=_http_client(settings),
    )


def _azure_client(settings: ProviderSettings, token: TokenProvider | None) -> openai.OpenAI:
    key = _key(settings)
    if key is None and token is None:
        raise ConfigError("azure_openai needs an api_key or an Entra ID token provider")
    if settings.base_url is None:
        raise ConfigError("azure_openai needs base_url (the resource endpoint)")
    return openai.AzureOpenAI(
        azure_endpoint=settings.base_url,
        api_version=settings.api_version,
        api_key=key,
        azure_ad_token_provider=None if key else token,
        max_retries=0,
        timeout=_timeout(settings),
        http_client=_http_client(settings),
    )


@dataclass(frozen=True)
class ProviderType:
    """What differs between provider types."""

    make_client: Callable[[ProviderSettings, TokenProvider | None], openai.OpenAI]
    # OpenAI's newer models refuse max_tokens; many compatible servers only know max_tokens.
    token_limit: Literal["max_tokens", "max_completion_tokens"]


PROVIDER_TYPES: Mapping[str, ProviderType] = {
    "openai": ProviderType(_openai_client, "max_completion_tokens"),
    "azure_openai": ProviderType(_azure_client, "max_completion_tokens"),
    "openai_compatible": ProviderType(_openai_client, "max_tokens"),
}


def _messages(messages: Sequence[ChatMessage]) -> list[ChatCompletionMessageParam]:
    converted: list[ChatCompletionMessageParam] = []
    for message in messages:
        if message.role == "system":
            converted.append({"role": "system", "content": message.content})
        elif message.role == "assistant":
            converted.append({"role": "assistant", "content": message.content})
        else:
            converted.append({"role": "user", "content": message.content})
    return converted


def _response_format(request: ChatRequest) -> ResponseFormat | openai.Omit:
    if request.json_schema is None:
        return openai.omit
    return {
        "type": "json_schema",
        "json_schema": {
            "name": request.schema_name,
            "schema": request.json_schema,
            "strict": True,
        },
    }


class OpenAIProvider:
    """One attempt per call against an OpenAI-API endpoint. Build through
    :func:`shipyard.providers.llm.registry.build_providers`, which applies the host allow-list."""

    def __init__(
        self,
        name: str,
        settings: ProviderSettings,
        *,
        token_provider: TokenProvider | None = None,
    ) -> None:
        self.name = name
        self.type = settings.type
        self._base_url = settings.resolved_base_url
        self._kind = PROVIDER_TYPES[settings.type]
        self._deployments = dict(settings.deployments)
        self._read_timeout = settings.read_timeout
        self._connect_timeout = settings.connect_timeout
        self._secret = settings.api_key
        self._client = self._kind.make_client(settings, token_provider)

    def complete(self, request: ChatRequest, *, deadline: Deadline) -> ChatResult:
        started = time.monotonic()
        try:
            response = self._client.chat.completions.create(
                model=self._model(request.model),
                messages=_messages(request.messages),
                temperature=request.temperature,
                response_format=_response_format(request),
                timeout=self._attempt_timeout(deadline),
                max_tokens=self._limit(request, "max_tokens"),
                max_completion_tokens=self._limit(request, "max_completion_tokens"),
            )
        except (openai.OpenAIError, ValueError) as error:
            raise self._translate(error) from error
        if not isinstance(response, ChatCompletion) or not response.choices:
            raise ProviderUnavailable(self.name, "reply without a choice")
        choice = response.choices[0]
        return ChatResult(
            content=choice.message.content or "",
            usage=_usage(response.usage),
            model=request.model,
            provider=self.name,
            finish_reason=choice.finish_reason,
            latency_ms=(time.monotonic() - started) * 1000.0,
        )

    def stream(self, request: ChatRequest, *, deadline: Deadline) -> Iterator[StreamEvent]:
        started = time.monotonic()
        options: ChatCompletionStreamOptionsParam = {"include_usage": True}
        try:
            chunks = self._client.chat.completions.create(
                model=self._model(request.model),
                messages=_messages(request.messages),
                temperature=request.temperature,
                response_format=_response_format(request),
                timeout=self._attempt_timeout(deadline),
                stream=True,
                stream_options=options,
                max_tokens=self._limit(request, "max_tokens"),
                max_completion_tokens=self._limit(request, "max_completion_tokens"),
            )
        except (openai.OpenAIError, ValueError) as error:
            raise self._translate(error) from error
        usage: Usage | None = None
        finish_reason: str | None = None
        try:
            for chunk in chunks:
                if chunk.usage is not None:
                    usage = _usage(chunk.usage)
                for choice in chunk.choices[:1]:
                    if choice.delta.content:
                        yield TextDelta(choice.delta.content)
                    if choice.finish_reason:
                        finish_reason = choice.finish_reason
                if deadline.expired:
                    raise ProviderTimeout(self.name, "deadline exceeded while streaming")
        except (openai.OpenAIError, ValueError) as error:
            raise self._translate(error) from error
        finally:
            chunks.close()
        if finish_reason is None:
            # The body ended cleanly but before the last event: the stream was cut.
            raise ProviderUnavailable(self.name, "stream ended before its finish event")
        yield StreamEnd(
            usage=usage or Usage(),
            finish_reason=finish_reason,
            model=request.model,
            provider=self.name,
            latency_ms=(time.monotonic() - started) * 1000.0,
        )

    def close(self) -> None:
        self._client.close()

    def _model(self, model: str) -> str:
        # Azure addresses a deployment; a model without an entry is its own deployment name.
        return self._deployments.get(model, model)

    def _limit(self, request: ChatRequest, parameter: str) -> int | openai.Omit:
        return request.max_tokens if parameter == self._kind.token_limit else openai.omit

    def _attempt_timeout(self, deadline: Deadline) -> openai.Timeout:
        """The configured timeouts, but never past the caller's deadline."""
        remaining = deadline.remaining()
        if remaining <= 0:
            raise ProviderTimeout(self.name, f"deadline of {deadline.seconds:g}s exceeded")
        return openai.Timeout(
            min(self._read_timeout, remaining), connect=min(self._connect_timeout, remaining)
        )

    def _translate(self, error: Exception) -> ProviderError:
        """SDK exception -> our error, by type (the order matters: subclasses first)."""
        name = self.name
        if isinstance(error, openai.APITimeoutError):
            return ProviderTimeout(name, "no reply within the read timeout")
        if isinstance(error, openai.APIConnectionError):
            return ProviderUnavailable(name, "connection failed or dropped")
        if isinstance(error, openai.RateLimitError):
            headers = error.response.headers
            retry_after = parse_retry_after(headers.get("retry-after"))
            milliseconds = parse_retry_after(headers.get("retry-after-ms"))  # OpenAI's, finer
            if milliseconds is not None:
                retry_after = milliseconds / 1000
            return ProviderRateLimited(name, "rate limited (HTTP 429)", retry_after=retry_after)
        if isinstance(error, openai.APIStatusError):
            status = error.status_code
            if status == 408:
                return ProviderTimeout(name, "the server timed out the request (HTTP 408)")
            if status >= 500 or status == 409:
                return ProviderUnavailable(name, f"server error (HTTP {status})")
            if status in {401, 403}:
                # Auth messages may echo part of the key: never pass them on.
                return ProviderRejected(
                    name, f"authentication refused (HTTP {status})", status=status
                )
            message = self._scrub(error.message)
            return ProviderRejected(name, f"rejected (HTTP {status}): {message}", status=status)
        if isinstance(error, openai.APIError):
            return ProviderUnavailable(name, "error event in the reply stream")
        return ProviderUnavailable(name, f"unreadable reply ({type(error).__name__})")

    def _scrub(self, message: str) -> str:
        secret = self._secret.get_secret_value() if self._secret else ""
        if secret:
            message = message.replace(secret, "***")
        return message[:_MAX_MESSAGE]

    def __repr__(self) -> str:
        return (
            f"OpenAIProvider(name={self.name!r}, type={self.type!r}, base_url={self._base_url!r})"
        )


def _usage(usage: object) -> Usage:
    prompt = getattr(usage, "prompt_tokens", None)
    completion = getattr(usage, "completion_tokens", None)
    return Usage(
        prompt_tokens=prompt if isinstance(prompt, int) else 0,
        completion_tokens=completion if isinstance(completion, int) else 0,
    )
