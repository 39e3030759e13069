"""LLM providers behind one interface: the real Anthropic SDK, and a deterministic offline echo.

The Anthropic key is never in the template or the env of a deployed function: the function gets
the name of an SSM parameter (a SecureString) and reads it through Powertools Parameters, cached.
Without a key (no parameter, or an empty name) the echo provider answers, and names itself in
``model``, so ``make dev`` and the tests work offline. ``ANTHROPIC_API_KEY`` in the env, if set,
wins (a local convenience); ``ANTHROPIC_BASE_URL`` is the SDK's own override (tests point the real
client at a fake Messages API on loopback with it).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal, Protocol

from tenantry.errors import ApiError, UpstreamFailed, UpstreamUnavailable
from tenantry.observability import logger

API_KEY_PARAMETER_ENV = "ANTHROPIC_API_KEY_PARAMETER"
TIMEOUT_ENV = "LLM_TIMEOUT_SECONDS"
MAX_RETRIES_ENV = "LLM_MAX_RETRIES"
MAX_TOKENS_ENV = "LLM_MAX_TOKENS"
ECHO_MODEL = "echo-1"
PARAMETER_MAX_AGE_SECONDS = 300
DEFAULT_RETRY_AFTER_SECONDS = 10
# Upstream answers that mean "try again later" rather than "broken": rate limited, overloaded.
_RETRY_LATER = frozenset({429, 529})

Role = Literal["user", "assistant"]


@dataclass(frozen=True, slots=True)
class Message:
    role: Role
    content: str


@dataclass(frozen=True, slots=True)
class Completion:
    text: str
    model: str
    input_tokens: int
    output_tokens: int


class Provider(Protocol):
    name: str

    def complete(self, *, system: str | None, messages: list[Message], model: str) -> Completion: ...


def echo_tokens(text: str) -> int:
    """The echo provider's token rule: one token per started 4 bytes of UTF-8, at least one."""
    return max(1, math.ceil(len(text.encode()) / 4))


class EchoProvider:
    """Offline and deterministic: answers ``echo: <the last user message>``."""

    name = "echo"

    def complete(self, *, system: str | None, messages: list[Message], model: str) -> Completion:
        reply = f"echo: {messages[-1].content}"
        prompt_tokens = sum(echo_tokens(message.content) for message in messages)
        if system:
            prompt_tokens += echo_tokens(system)
        return Completion(reply, ECHO_MODEL, prompt_tokens, echo_tokens(reply))


class AnthropicProvider:
    """The Messages API through the official SDK, with its timeout and retries."""

    name = "anthropic"

    def __init__(self, api_key: str, *, timeout: float, max_retries: int, max_tokens: int) -> None:
        import anthropic  # noqa: PLC0415 - only functions that chat pay for the SDK's import

        self._anthropic = anthropic
        self._client = anthropic.Anthropic(api_key=api_key, timeout=timeout, max_retries=max_retries)
        self._max_tokens = max_tokens

    def complete(self, *, system: str | None, messages: list[Message], model: str) -> Completion:
        arguments: dict[str, Any] = {
            "model": model,
            "max_tokens": self._max_tokens,
            "messages": [{"role": message.role, "content": message.content} for message in messages],
        }
        if system:
            arguments["system"] = system
        try:
            response = self._client.messages.create(**arguments)
        except self._anthropic.APIStatusError as exc:
            raise _status_error(exc.status_code, exc.response.headers.get("retry-after")) from exc
        except self._anthropic.APITimeoutError as exc:
            logger.warning("LLM call timed out", extra={"model": model})
            raise UpstreamFailed("The model did not answer in time", code="upstream_timeout") from exc
        except self._anthropic.APIConnectionError as exc:
            logger.warning("LLM call could not connect", extra={"model": model})
            raise UpstreamFailed("The model could not be reached", code="upstream_unreachable") from exc
        text = "".join(block.text for block in response.content if getattr(block, "type", "") == "text")
        return Completion(text, response.model, response.usage.input_tokens, response.usage.output_tokens)


def _status_error(status: int, retry_after: str | None) -> ApiError:
    logger.warning("LLM call failed", extra={"upstream_status": status})
    if status in _RETRY_LATER:
        seconds = retry_after if retry_after and retry_after.isdigit() else str(DEFAULT_RETRY_AFTER_SECONDS)
        return UpstreamUnavailable(
            "The model is busy or rate limited; retry later",
            code="upstream_busy",
            headers={"Retry-After": seconds},
        )
    if status >= 500:
        return UpstreamFailed(f"The model failed (upstream status {status})", code="upstream_error")
    # A 4xx from upstream is our configuration's fault (key, model name), not the caller's.
    return UpstreamFailed(
        f"The model refused the request (upstream status {status})", code="upstream_rejected"
    )


def _api_key() -> str | None:
    direct = os.environ.get("ANTHROPIC_API_KEY")
    if direct:
        return direct
    parameter = os.environ.get(API_KEY_PARAMETER_ENV, "")
    if not parameter:
        return None
    from aws_lambda_powertools.utilities import parameters  # noqa: PLC0415

    try:
        value = parameters.get_parameter(parameter, decrypt=True, max_age=PARAMETER_MAX_AGE_SECONDS)
    except parameters.exceptions.GetParameterError:
        logger.info("no Anthropic key parameter; using the echo provider")
        return None
    return str(value).strip() or None


@cache
def _anthropic_provider(api_key: str) -> AnthropicProvider:
    return AnthropicProvider(
        api_key,
        timeout=float(os.environ.get(TIMEOUT_ENV, "20")),
        max_retries=int(os.environ.get(MAX_RETRIES_ENV, "2")),
        max_tokens=int(os.environ.get(MAX_TOKENS_ENV, "1024")),
    )


def provider() -> Provider:
    """Anthropic when a key is configured, otherwise echo. The SDK client is reused while warm."""
    key = _api_key()
    return _anthropic_provider(key) if key else EchoProvider()


def reset() -> None:
    """Forget cached clients and parameters (tests switch keys and endpoints)."""
    _anthropic_provider.cache_clear()
    from aws_lambda_powertools.utilities import parameters  # noqa: PLC0415

    parameters.clear_caches()  # type: ignore[no-untyped-call]
