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

from aws_lambda_powertools.metrics import MetricUnit

from tenantry import caches
from tenantry.errors import ApiError, GatewayTimeout, UpstreamFailed, UpstreamUnavailable
from tenantry.observability import logger, metrics

API_KEY_PARAMETER_ENV = "ANTHROPIC_API_KEY_PARAMETER"
TIMEOUT_ENV = "LLM_TIMEOUT_SECONDS"
MAX_RETRIES_ENV = "LLM_MAX_RETRIES"
MAX_TOKENS_ENV = "LLM_MAX_TOKENS"
ECHO_MODEL = "echo-1"
PARAMETER_MAX_AGE_SECONDS = 300
DEFAULT_RETRY_AFTER_SECONDS = 10
# An upper bound of the SDK's pause between retries (it honours retry-after up to 60 s, but its
# own backoff starts at 0.5 s and the answers that set it are rare); used to size the retries.
SDK_BACKOFF_BOUND_SECONDS = 1.0
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


class ModelTimeout(GatewayTimeout):
    code = "model_timeout"


class Provider(Protocol):
    name: str

    def complete(
        self, *, system: str | None, messages: list[Message], model: str, budget_seconds: float
    ) -> Completion:
        """Answer within ``budget_seconds`` (every attempt and retry included) or raise."""
        ...


def echo_tokens(text: str) -> int:
    """The echo provider's token rule: one token per started 4 bytes of UTF-8, at least one."""
    return max(1, math.ceil(len(text.encode()) / 4))


class EchoProvider:
    """Offline and deterministic: answers ``echo: <the last user message>``."""

    name = "echo"

    def complete(
        self, *, system: str | None, messages: list[Message], model: str, budget_seconds: float
    ) -> Completion:
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
        self._timeout = timeout
        self._max_retries = max_retries
        self._max_tokens = max_tokens

    def attempts_within(self, budget_seconds: float) -> tuple[float, int]:
        """(timeout per attempt, retries) that fit ``budget_seconds``, with the SDK's backoff
        between attempts, so the call as a whole ends in time."""
        per_attempt = min(self._timeout, budget_seconds)
        retries = 0
        while (
            retries < self._max_retries
            and (retries + 2) * per_attempt + (retries + 1) * SDK_BACKOFF_BOUND_SECONDS <= budget_seconds
        ):
            retries += 1
        return per_attempt, retries

    def complete(
        self, *, system: str | None, messages: list[Message], model: str, budget_seconds: float
    ) -> Completion:
        arguments: dict[str, Any] = {
            "model": model,
            "max_tokens": self._max_tokens,
            "messages": [{"role": message.role, "content": message.content} for message in messages],
        }
        if system:
            arguments["system"] = system
        per_attempt, retries = self.attempts_within(budget_seconds)
        client = self._client.with_options(timeout=per_attempt, max_retries=retries)
        try:
            response = client.messages.create(**arguments)
        except self._anthropic.APIStatusError as exc:
            raise _status_error(exc.status_code, exc.response.headers.get("retry-after")) from exc
        except self._anthropic.APITimeoutError as exc:
            logger.warning(
                "LLM call timed out", extra={"model": model, "timeout_s": per_attempt, "retries": retries}
            )
            raise ModelTimeout(
                "The model did not answer in time; nothing was stored", headers={"Retry-After": "1"}
            ) from exc
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


class ModelKeyUnavailable(UpstreamUnavailable):
    code = "model_key_unavailable"


def _error_code(exc: BaseException) -> str:
    """The AWS error code behind Powertools' GetParameterError (it wraps botocore's ClientError)."""
    cause: BaseException | None = exc
    while cause is not None:
        response = getattr(cause, "response", None)
        if isinstance(response, dict):
            return str(response.get("Error", {}).get("Code", ""))
        cause = cause.__cause__ or cause.__context__
    return ""


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
    except parameters.exceptions.GetParameterError as exc:
        if _error_code(exc) == "ParameterNotFound":
            logger.info("no Anthropic key parameter; using the echo provider")
            return None
        # Anything else (access denied, throttled, KMS) is not "no key": answering with echo would
        # hand paying tenants a fake reply. Nothing is cached, so the next request reads again.
        logger.error("the Anthropic key parameter could not be read", extra={"error_code": _error_code(exc)})
        metrics.add_metric(name="ModelKeyUnavailable", unit=MetricUnit.Count, value=1)
        raise ModelKeyUnavailable(
            "The model's credentials could not be read; retry shortly", headers={"Retry-After": "5"}
        ) from exc
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


@caches.register
def _forget_provider() -> None:
    """The SDK client and the key read from SSM (tests switch keys and endpoints)."""
    _anthropic_provider.cache_clear()
    from aws_lambda_powertools.utilities import parameters  # noqa: PLC0415

    parameters.clear_caches()  # type: ignore[no-untyped-call]
