"""Streamed answers: API Gateway REST response streaming (``responseTransferMode: STREAM``) from
Python, for any route and any function.

What API Gateway wants from a Lambda proxy integration that streams is bytes: a JSON prelude (the
proxy answer's ``statusCode``, ``headers``, ``multiValueHeaders``, ``cookies``), eight NUL bytes,
then the body as it is produced. Lambda's Python runtime has no streaming handler, so a function
whose routes stream runs :mod:`tenantry.streaming_runtime` (its Runtime API loop), which hands the
handler a writable :class:`ResponseStream` as ``context.response_stream``; the local gateway's
sandboxes hand it the same object, over their pipe.

Which routes stream is :data:`tenantry.routes.STREAMED` (a unit test checks template.yaml agrees):
on those, every answer goes through the stream, errors found before streaming included, so API
Gateway always finds its prelude. A route streams by returning :func:`respond` with the function
that writes its body; the HTTP glue (:func:`answer`) writes the prelude, then calls it.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from typing import Any, Final, Protocol

from aws_lambda_powertools.event_handler import Response

from tenantry.errors import ApiError
from tenantry.observability import logger

# What separates the prelude from the body.
DELIMITER: Final = b"\x00" * 8
# API Gateway looks for the prelude and its delimiter in the first 16 KB of the stream.
MAX_PRELUDE_BYTES: Final = 16 * 1024
PRELUDE_FIELDS: Final = ("statusCode", "headers", "multiValueHeaders", "cookies")
EVENT_STREAM: Final = "text/event-stream"


class ResponseStream(Protocol):
    """What a streaming runtime hands a handler (``context.response_stream``)."""

    def write(self, data: bytes) -> bool:
        """Send ``data`` on; False once nobody reads the stream any more (the client left)."""
        ...


Producer = Callable[[ResponseStream], None]

_pending: ContextVar[tuple[Producer] | None] = ContextVar("tenantry_stream_producer", default=None)


def response_stream(context: Any) -> ResponseStream | None:
    """The invocation's response stream; None when the runtime does not stream (the managed
    runtime, a test calling the handler without one)."""
    stream = getattr(context, "response_stream", None)
    return stream if stream is not None and callable(getattr(stream, "write", None)) else None


def prelude(answer: Mapping[str, Any]) -> bytes:
    """The metadata API Gateway reads before a streamed body, and the delimiter after it."""
    metadata = {name: answer[name] for name in PRELUDE_FIELDS if answer.get(name) is not None}
    encoded = json.dumps(metadata, separators=(",", ":")).encode()
    if len(encoded) + len(DELIMITER) > MAX_PRELUDE_BYTES:
        raise ValueError(f"the answer's headers take {len(encoded)} bytes; API Gateway reads 16 KB")
    return encoded + DELIMITER


def body_bytes(answer: Mapping[str, Any]) -> bytes:
    """A proxy answer's body as the bytes API Gateway would send."""
    body = answer.get("body")
    if body is None:
        return b""
    if answer.get("isBase64Encoded"):
        return base64.b64decode(str(body))
    return str(body).encode()


def respond(producer: Producer, *, headers: Mapping[str, str] | None = None) -> Response[str]:
    """What a streamed route returns: a 200 ``text/event-stream`` whose body ``producer`` writes
    once the glue has sent the status and headers (Powertools' own answer, CORS included)."""
    _pending.set((producer,))
    return Response(
        status_code=200,
        content_type=EVENT_STREAM,
        body="",
        # Proxies must neither cache nor buffer an event stream.
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no", **(headers or {})},
    )


class StreamMisconfiguredError(ApiError):
    status = 500
    code = "misconfigured"


def answer(context: Any, resolve: Callable[[], dict[str, Any]]) -> dict[str, Any] | None:
    """Resolve a streamed route's request and send its answer through the response stream: the
    prelude, then the body (a whole one, or what the route's producer writes). None once sent;
    the proxy answer itself when there is no stream (a runtime that cannot stream: API Gateway
    then finds no prelude and answers 502, as it would on AWS)."""
    token = _pending.set(None)
    try:
        proxy = resolve()
        pending = _pending.get()
    finally:
        _pending.reset(token)
    stream = response_stream(context)
    if stream is None:
        if pending is not None:
            logger.error("a streamed route ran without a response stream (is the function's runtime set?)")
            problem = StreamMisconfiguredError("This route streams, and the function's runtime does not")
            return {
                "statusCode": problem.status,
                "headers": {"Content-Type": "application/json"},
                "body": json.dumps(problem.body()),
            }
        return proxy
    stream.write(prelude(proxy))
    if pending is None:
        stream.write(body_bytes(proxy))
        return None
    (producer,) = pending
    producer(stream)
    return None


def sse(event: str, data: Any, *, event_id: str | None = None) -> bytes:
    """One Server-Sent Event: its name, an optional id, and one ``data:`` line of JSON."""
    lines = [f"event: {event}"]
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.append("data: " + json.dumps(data, separators=(",", ":"), ensure_ascii=False))
    return ("\n".join(lines) + "\n\n").encode()


def sse_comment(text: str) -> bytes:
    """An SSE comment line (``: text``): clients ignore it; it keeps idle connections open."""
    return f": {text}\n\n".encode()


class EventStream:
    """Server-Sent Events on a response stream for one request: events, keep-alive comments, and
    the ``error`` event an :class:`ApiError` becomes once the status is sent. Remembers when the
    client left, so a producer that must finish its work anyway stops writing."""

    def __init__(self, stream: ResponseStream, request_id: str) -> None:
        self._stream = stream
        self.request_id = request_id
        self.client_gone = False

    def _write(self, data: bytes) -> bool:
        if self.client_gone:
            return False
        if not self._stream.write(data):
            self.client_gone = True
        return not self.client_gone

    def send(self, event: str, data: Any, *, event_id: str | None = None) -> bool:
        return self._write(sse(event, data, event_id=event_id))

    def keep_alive(self) -> bool:
        return self._write(sse_comment("keep-alive"))

    def probe(self) -> bool:
        """Whether the client may still be there, asked without sending anything: a runtime that
        cannot tell without a write (Lambda's) says yes until a write fails; the local stack's
        knows at once."""
        return self._write(b"")

    def fail(self, error: ApiError) -> bool:
        """The stream's last event: the error body every JSON error has."""
        return self.send("error", {**error.body(), "request_id": self.request_id})
