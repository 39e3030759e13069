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

import io
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

from botocore.awsrequest import AWSPreparedRequest, AWSResponse

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

_apps: dict[str, WsgiApp] = {}
_installed = threading.Lock()
_handler_installed = False


class RawBody(io.BytesIO):
    """An answer's body as botocore reads it (``stream()``, as from urllib3's raw response), over
    bytes already in memory: for answers made without a socket (here, faults, IAM refusals)."""

    def stream(self, *_: Any, **__: Any) -> Iterable[bytes]:
        chunk = self.read()
        while chunk:
            yield chunk
            chunk = self.read()


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
        _memoize_user_agent_components()
        _handler_installed = True


def _memoize_user_agent_components() -> None:
    """botocore rebuilds each request's User-Agent from a few dozen components, sanitizing each
    one character by character (about a tenth of a call's client-side time here). The sanitizer
    is a pure function of its arguments, so the same text gives the same answer from a cache."""
    import functools  # noqa: PLC0415

    from botocore import useragent  # noqa: PLC0415

    sanitize = useragent.sanitize_user_agent_string_component
    if not hasattr(sanitize, "cache_info"):
        cached = functools.lru_cache(maxsize=4096)(sanitize)
        setattr(useragent, "sanitize_user_agent_string_component", cached)  # noqa: B010 - a patch


def dispatch(request: AWSPreparedRequest, **_: Any) -> AWSResponse | None:
    """The answer of the in-process server ``request`` is for; None sends it over the network."""
    if not _apps or getattr(request, "tenantry_fault", False):
        return None  # (a fault handler answered this request already: local/faults.py)
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
    environ: dict[str, Any] = {
        "REQUEST_METHOD": request.method,
        "SCRIPT_NAME": "",
        "PATH_INFO": parts.path or "/",
        "QUERY_STRING": parts.query,
        "SERVER_NAME": parts.hostname or "127.0.0.1",
        "SERVER_PORT": str(parts.port or 80),
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "CONTENT_LENGTH": str(len(data)),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": parts.scheme,
        "wsgi.input": io.BytesIO(data),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    for name, value in request.headers.items():
        text = value.decode("utf-8") if isinstance(value, bytes) else str(value)
        key = name.upper().replace("-", "_")
        if key == "CONTENT_TYPE":
            environ["CONTENT_TYPE"] = text
        elif key != "CONTENT_LENGTH":
            environ[f"HTTP_{key}"] = text
    environ.setdefault("HTTP_HOST", parts.netloc)
    answer: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        answer["status"] = int(status.split(" ", 1)[0])
        answer["headers"] = headers

    result = app(environ, start_response)
    try:
        payload = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    headers: Any = dict(answer["headers"])  # botocore wraps the mapping in its own headers type
    return AWSResponse(request.url, answer["status"], headers, RawBody(payload))
