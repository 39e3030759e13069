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
import queue
import threading
import time
from collections.abc import Iterator
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


class StreamInterrupted(UpstreamFailed):
    code = "upstream_interrupted"


@dataclass(slots=True)
class ReportedUsage:
    """The tokens a model reported so far in a stream: the prompt's when it starts, the output's
    as it goes (and at its end). What a cut stream costs is what was reported."""

    input_tokens: int = 0
    output_tokens: int = 0


@dataclass(frozen=True, slots=True)
class StreamResult:
    """A finished stream: the whole text, the model that wrote it, its tokens, why it stopped."""

    text: str
    model: str
    input_tokens: int
    output_tokens: int
    stop_reason: str


class ModelStream(Protocol):
    """An answer being written. ``model`` is the model answering; ``usage`` what it reported so
    far (read it after a failure too); ``result`` the finished answer once :meth:`pieces` ended."""

    model: str
    usage: ReportedUsage

    def pieces(self, *, within_seconds: float, idle_seconds: float) -> Iterator[str | None]:
        """The answer's text as the model writes it; None whenever ``idle_seconds`` pass with
        nothing (the caller may keep its client's connection alive). Raises an ApiError when the
        model fails, breaks off, or has not finished ``within_seconds``."""
        ...

    @property
    def result(self) -> StreamResult: ...

    def close(self) -> None: ...


class Provider(Protocol):
    name: str

    def complete(
        self, *, system: str | None, messages: list[Message], model: str, budget_seconds: float
    ) -> Completion:
        """Answer within ``budget_seconds`` (every attempt and retry included) or raise."""
        ...

    def open_stream(
        self,
        *,
        system: str | None,
        messages: list[Message],
        model: str,
        max_tokens: int,
        budget_seconds: float,
    ) -> ModelStream:
        """Start an answer that streams: the model accepted the request (errors before that are
        raised here, as :meth:`complete` raises them, within ``budget_seconds``)."""
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

    def open_stream(
        self,
        *,
        system: str | None,
        messages: list[Message],
        model: str,
        max_tokens: int,
        budget_seconds: float,
    ) -> ModelStream:
        return EchoStream(self.complete(system=system, messages=messages, model=model, budget_seconds=0))


class EchoStream:
    """The echo answer a word at a time (each word with the space before it)."""

    def __init__(self, completion: Completion) -> None:
        self._completion = completion
        self.model = completion.model
        self.usage = ReportedUsage(input_tokens=completion.input_tokens)
        self._result: StreamResult | None = None

    def pieces(self, *, within_seconds: float, idle_seconds: float) -> Iterator[str | None]:
        text = self._completion.text
        words = text.split(" ")
        for index, word in enumerate(words):
            yield word if index == 0 else " " + word
        self.usage.output_tokens = self._completion.output_tokens
        self._result = StreamResult(
            text, self.model, self._completion.input_tokens, self._completion.output_tokens, "end_turn"
        )

    @property
    def result(self) -> StreamResult:
        if self._result is None:
            raise RuntimeError("the stream has not finished")
        return self._result

    def close(self) -> None:
        """Nothing to release."""


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

    def open_stream(
        self,
        *,
        system: str | None,
        messages: list[Message],
        model: str,
        max_tokens: int,
        budget_seconds: float,
    ) -> ModelStream:
        """The SDK's own streaming (``messages.stream``), opened here: the request is sent and the
        model accepted it, with the SDK's retries on the way, all within ``budget_seconds``."""
        arguments: dict[str, Any] = {
            "model": model,
            "max_tokens": max_tokens,
            "messages": [{"role": message.role, "content": message.content} for message in messages],
        }
        if system:
            arguments["system"] = system
        per_attempt, retries = self.attempts_within(budget_seconds)
        client = self._client.with_options(timeout=per_attempt, max_retries=retries)
        manager = client.messages.stream(**arguments)
        try:
            stream = manager.__enter__()
        except self._anthropic.APIStatusError as exc:
            raise _status_error(exc.status_code, exc.response.headers.get("retry-after")) from exc
        except self._anthropic.APITimeoutError as exc:
            logger.warning(
                "LLM stream did not open in time", extra={"model": model, "timeout_s": per_attempt}
            )
            raise ModelTimeout(
                "The model did not answer in time; nothing was stored", headers={"Retry-After": "1"}
            ) from exc
        except self._anthropic.APIConnectionError as exc:
            logger.warning("LLM stream could not connect", extra={"model": model})
            raise UpstreamFailed("The model could not be reached", code="upstream_unreachable") from exc
        return AnthropicStream(stream, model, self._anthropic)


_END = object()


class AnthropicStream:
    """An opened ``messages.stream``, read on a thread of its own into a queue, so the caller
    waits with its own clock: it keeps its client's connection alive while the model is silent and
    stops at its deadline even when the model trickles or hangs (a blocked read cannot be cut
    short from another thread). An abandoned reader stops at its next event or read timeout."""

    def __init__(self, stream: Any, model: str, sdk: Any) -> None:
        self._stream = stream
        self._sdk = sdk
        self.model = model
        self.usage = ReportedUsage()
        self._events: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._abandoned = threading.Event()
        self._text: list[str] = []
        self._stop_reason: str | None = None
        self._result: StreamResult | None = None
        self._reader = threading.Thread(target=self._read, name="llm-stream", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        try:
            for event in self._stream:
                if self._abandoned.is_set():
                    break
                self._events.put(("event", event))
        except Exception as exc:  # noqa: BLE001 - handed to the waiting caller, who maps it
            self._events.put(("error", exc))
        finally:
            self._events.put(("end", _END))
            # Releases the connection of a stream left unread (abandoned); idempotent otherwise.
            self._stream.close()

    def pieces(self, *, within_seconds: float, idle_seconds: float) -> Iterator[str | None]:
        deadline = time.monotonic() + within_seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                self._abandoned.set()
                logger.warning("LLM stream did not finish in time", extra={"model": self.model})
                raise ModelTimeout("The model did not finish in time; nothing was stored")
            try:
                kind, item = self._events.get(timeout=min(idle_seconds, left))
            except queue.Empty:
                yield None
                continue
            if kind == "error":
                raise self._failure(item)
            if kind == "end":
                break
            piece = self._take(item)
            if piece:
                self._text.append(piece)
                yield piece
        if self._stop_reason is None:
            # The connection closed cleanly before the model said it had finished.
            raise StreamInterrupted("The model's answer broke off; nothing was stored")
        self._result = StreamResult(
            "".join(self._text),
            self.model,
            self.usage.input_tokens,
            self.usage.output_tokens,
            self._stop_reason,
        )

    def _take(self, event: Any) -> str | None:
        """Record what ``event`` reports; its text, if it carries some."""
        kind = getattr(event, "type", "")
        if kind == "message_start":
            message = event.message
            self.model = str(message.model or self.model)
            self.usage.input_tokens = int(message.usage.input_tokens or 0)
            self.usage.output_tokens = int(message.usage.output_tokens or 0)
        elif kind == "content_block_delta" and getattr(event.delta, "type", "") == "text_delta":
            return str(event.delta.text)
        elif kind == "message_delta":
            self._stop_reason = str(event.delta.stop_reason or "end_turn")
            usage = event.usage
            self.usage.output_tokens = int(usage.output_tokens or self.usage.output_tokens)
            if getattr(usage, "input_tokens", None):
                self.usage.input_tokens = int(usage.input_tokens)
        return None

    def _failure(self, exc: BaseException) -> ApiError:
        if isinstance(exc, self._sdk.APIStatusError):
            # An `event: error` in the stream (its HTTP status was 200): the error's own type says what.
            body = exc.body if isinstance(exc.body, dict) else {}
            error = body.get("error") if isinstance(body.get("error"), dict) else body
            kind = str((error or {}).get("type", ""))
            logger.warning("LLM stream failed", extra={"upstream_error": kind, "model": self.model})
            if kind in ("overloaded_error", "rate_limit_error"):
                return UpstreamUnavailable(
                    "The model is busy; its answer stopped and nothing was stored",
                    code="upstream_busy",
                    headers={"Retry-After": str(DEFAULT_RETRY_AFTER_SECONDS)},
                )
            return UpstreamFailed(f"The model failed mid-answer ({kind or 'error'})", code="upstream_error")
        logger.warning("LLM stream broke off", extra={"error_type": type(exc).__name__, "model": self.model})
        return StreamInterrupted("The model's answer broke off; nothing was stored")

    @property
    def result(self) -> StreamResult:
        if self._result is None:
            raise RuntimeError("the stream has not finished")
        return self._result

    def close(self) -> None:
        """Stop reading (the reader releases the connection at its next event or read timeout)."""
        self._abandoned.set()


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
