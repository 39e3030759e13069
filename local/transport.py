"""Boto3 to the embedded AWS without HTTP: botocore ``before-send`` handlers.

Two callers reach the embedded AWS's WSGI chain (faults, the lock and journal, IAM's tenant wall,
the rules moto leaves out, moto) without a loopback HTTP connection; everything before it is
boto3's usual path (parameter validation, serialization, signing, retries, response parsing), and
requests to any other URL go on over the network as usual:

- **In process** (the stack's own calls: usage plans, schedules, the admin key at start): a
  prepared request whose URL is a registered in-process server's endpoint is turned into a WSGI
  environ and handed to that server's app (:func:`register`, :func:`dispatch`).
- **From a sandbox** (each function's calls): a sandbox is a process of its own, so its requests
  cross the sandbox's AWS channel, a pipe to the gateway (:class:`ChannelClient` in the sandbox),
  and the gateway's thread that is waiting for that sandbox's answer anyway serves them
  (:func:`serve_channel_message`), as Lambda's runtime API is served beside the function. Over
  HTTP each call cost a TCP connection's send and receive on both sides, urllib3's and
  http.client's request and response handling in the sandbox, an HTTP parse and a thread wake-up
  in the stack: more CPU than moto's own work for a ``GetItem``.

A message on the channel is a 4-byte length, a JSON head (the request's method, URL and headers,
or the answer's status and headers) and the body as it is.
"""

from __future__ import annotations

import json
import threading
from typing import Any
from urllib.parse import urlsplit

from botocore.awsrequest import AWSPreparedRequest, AWSResponse

from local.wire import Answer, WsgiApp, call, json_error, request_environ, to_botocore

_apps: dict[str, WsgiApp] = {}
_installed = threading.Lock()
_handlers: list[Any] = []  # the before-send handlers this process registered


def register(endpoint_url: str, app: WsgiApp) -> None:
    """Serve requests for ``endpoint_url`` made in this process by ``app``, in process."""
    _install_handler(dispatch)
    _apps[endpoint_url.rstrip("/")] = app


def unregister(endpoint_url: str) -> None:
    _apps.pop(endpoint_url.rstrip("/"), None)


def serves(endpoint_url: str) -> bool:
    """Whether an in-process server answers ``endpoint_url`` (so a sandbox may use a channel)."""
    return endpoint_url.rstrip("/") in _apps


def _install_handler(handler: Any) -> None:
    """Every botocore session gets ``handler`` on ``before-send``: sessions made later
    (botocore's built-in handler list) and boto3's default session if it exists already."""
    with _installed:
        if handler in _handlers:
            return
        import boto3  # noqa: PLC0415
        from botocore import handlers  # noqa: PLC0415

        handlers.BUILTIN_HANDLERS.append(("before-send", handler))
        if boto3.DEFAULT_SESSION is not None:
            boto3.DEFAULT_SESSION.events.register("before-send", handler)
        _handlers.append(handler)


def _request_parts(request: AWSPreparedRequest) -> tuple[dict[str, str], bytes]:
    """The prepared request's headers (text, without Content-Length) and body (bytes)."""
    body = request.body
    if body is None:
        data = b""
    elif isinstance(body, bytes | bytearray):
        data = bytes(body)
    elif isinstance(body, str):
        data = body.encode("utf-8")
    else:
        read: bytes | str = body.read()
        data = read.encode("utf-8") if isinstance(read, str) else read
    headers = {
        name: value.decode("utf-8") if isinstance(value, bytes) else str(value)
        for name, value in request.headers.items()
        if name.lower() != "content-length"
    }
    return headers, data


def answer(method: str, url: str, headers: dict[str, str], body: bytes) -> Answer | None:
    """The answer of the in-process server ``url`` is for; None when no server here has it."""
    parts = urlsplit(url)
    app = _apps.get(f"{parts.scheme}://{parts.netloc}")
    if app is None:
        return None
    environ = request_environ(method, parts.path or "/", body, headers)
    environ.update(
        QUERY_STRING=parts.query,
        SERVER_NAME=parts.hostname or "127.0.0.1",
        SERVER_PORT=str(parts.port or 80),
    )
    environ.setdefault("HTTP_HOST", parts.netloc)
    environ["wsgi.url_scheme"] = parts.scheme
    return call(app, environ)


def dispatch(request: AWSPreparedRequest, **_: Any) -> AWSResponse | None:
    """The answer of the in-process server ``request`` is for; None sends it over the network."""
    if not _apps:
        return None
    headers, data = _request_parts(request)
    found = answer(request.method, request.url, headers, data)
    return None if found is None else to_botocore(request.url, found)


# ---------------------------------------------------------------------- the sandbox's AWS channel
def _frame(head: dict[str, Any], body: bytes) -> bytes:
    encoded = json.dumps(head, separators=(",", ":")).encode()
    return len(encoded).to_bytes(4, "big") + encoded + body


def _unframe(message: bytes) -> tuple[dict[str, Any], bytes]:
    size = int.from_bytes(message[:4], "big")
    head: dict[str, Any] = json.loads(message[4 : 4 + size])
    return head, message[4 + size :]


def serve_channel_message(message: bytes) -> bytes:
    """The gateway's side: a sandbox's request off its channel, answered by the in-process server
    its URL names (a 500 in the service's protocol if none is there or the server failed, which
    botocore retries as it would AWS's)."""
    request, body = _unframe(message)
    try:
        found = answer(str(request["method"]), str(request["url"]), dict(request["headers"]), body)
    except Exception:  # noqa: BLE001 - the embedded server's bug is AWS's InternalFailure to the caller
        found = None
    if found is None:
        found = json_error("", "InternalFailure", "the embedded AWS did not answer", status=500)
    return _frame({"status": found.status, "headers": list(found.headers)}, found.body)


class ChannelClient:
    """The sandbox's side: a botocore ``before-send`` handler that sends the requests for
    ``endpoint_url`` over ``connection`` (a :mod:`multiprocessing` connection to the gateway) and
    hands botocore the answer. One request at a time per sandbox (the embedded AWS runs one at a
    time anyway); any other URL goes over the network."""

    def __init__(self, connection: Any, endpoint_url: str) -> None:
        self._connection = connection
        self._origin = endpoint_url.rstrip("/")
        self._lock = threading.Lock()

    def install(self) -> None:
        _install_handler(self)

    def __call__(self, request: AWSPreparedRequest, **_: Any) -> AWSResponse | None:
        url = str(request.url)
        if not url.startswith(self._origin) or url[len(self._origin) : len(self._origin) + 1] not in "/?":
            return None
        headers, data = _request_parts(request)
        message = _frame({"method": request.method, "url": url, "headers": headers}, data)
        with self._lock:
            self._connection.send_bytes(message)
            head, body = _unframe(self._connection.recv_bytes())
        found = Answer(int(head["status"]), tuple((str(n), str(v)) for n, v in head["headers"]), body)
        return to_botocore(url, found)
