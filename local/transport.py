"""Boto3 to the embedded AWS without a socket: a botocore ``before-send`` handler.

The handlers of the local gateway run in the same process as the embedded AWS, yet each of their
DynamoDB calls used to travel over loopback HTTP into moto's server (a connection, an HTTP parse
and a thread hand-off per call). Here a prepared request whose URL is an in-process server's
endpoint is turned into a WSGI environ and handed to that server's WSGI app, the same wrapper
chain (lock, journal, and any middleware around it) an HTTP request goes through. Everything
before it is boto3's usual path: parameter validation, serialization, signing, retries and
response parsing. Requests to any other URL go on over the network as usual.
"""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import urlsplit

from botocore.awsrequest import AWSPreparedRequest, AWSResponse

from local.wire import WsgiApp, call, request_environ, to_botocore

_apps: dict[str, WsgiApp] = {}
_installed = threading.Lock()
_handler_installed = False


def register(endpoint_url: str, app: WsgiApp) -> None:
    """Serve requests for ``endpoint_url`` made in this process by ``app``, in process."""
    _install_handler()
    _apps[endpoint_url.rstrip("/")] = app


def unregister(endpoint_url: str) -> None:
    _apps.pop(endpoint_url.rstrip("/"), None)


def _install_handler() -> None:
    """Every botocore session gets the handler: sessions made later (botocore's built-in handler
    list) and boto3's default session if it exists already."""
    global _handler_installed  # noqa: PLW0603 - one process-wide registration
    with _installed:
        if _handler_installed:
            return
        import boto3  # noqa: PLC0415
        from botocore import handlers  # noqa: PLC0415

        handlers.BUILTIN_HANDLERS.append(("before-send", dispatch))
        if boto3.DEFAULT_SESSION is not None:
            boto3.DEFAULT_SESSION.events.register("before-send", dispatch)  # type: ignore[arg-type]
        _handler_installed = True


def dispatch(request: AWSPreparedRequest, **_: Any) -> AWSResponse | None:
    """The answer of the in-process server ``request`` is for; None sends it over the network."""
    if not _apps:
        return None
    parts = urlsplit(request.url)
    app = _apps.get(f"{parts.scheme}://{parts.netloc}")
    if app is None:
        return None
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
    environ = request_environ(request.method, parts.path or "/", data, headers)
    environ.update(
        QUERY_STRING=parts.query,
        SERVER_NAME=parts.hostname or "127.0.0.1",
        SERVER_PORT=str(parts.port or 80),
    )
    environ.setdefault("HTTP_HOST", parts.netloc)
    environ["wsgi.url_scheme"] = parts.scheme
    return to_botocore(request.url, call(app, environ))
