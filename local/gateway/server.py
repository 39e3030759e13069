"""A small HTTP/1.1 server: one thread per keep-alive connection, answers written in one piece.

The standard library's ``http.server`` writes the status line, the headers and the body in
separate calls; on a keep-alive connection without ``TCP_NODELAY`` the second write waits for the
client's delayed ACK (about 40 ms). Here every answer is assembled first and sent with one
``sendall`` on a socket with ``TCP_NODELAY`` set. Whatever the client sends, the connection gets an
HTTP answer or is closed; no exception escapes to the client.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import BinaryIO, cast

_log = logging.getLogger("tenantry.local.gateway")

MAX_REQUEST_LINE = 16 * 1024
MAX_HEADER_LINE = 16 * 1024
MAX_HEADERS = 200
# API Gateway's quota for REST APIs: the request line and header values together, in bytes.
MAX_HEADER_BYTES = 10 * 1024
IDLE_TIMEOUT_SECONDS = 75.0
_DRAIN_LIMIT = 64 * 1024 * 1024


@dataclass
class HttpRequest:
    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]
    body: bytes
    client_ip: str
    body_too_large: bool = False

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        found = None
        for header_name, value in self.headers:
            if header_name.lower() == wanted:
                found = value
        return found


@dataclass
class HttpResponse:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    close: bool = False


Handler = Callable[[HttpRequest], HttpResponse]


class BadRequestError(Exception):
    """The bytes on the wire are not an HTTP/1.x request we can answer."""

    status = 400


class HeadersTooLargeError(BadRequestError):
    """The request line and headers exceed API Gateway's limit (a 431)."""

    status = 431


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def encode_response(response: HttpResponse, keep_alive: bool) -> bytes:
    lines = [f"HTTP/1.1 {response.status} {_reason(response.status)}"]
    for name, value in response.headers:
        if name.lower() not in ("content-length", "connection", "transfer-encoding"):
            # Header injection through a handler's header value is cut off at the line break.
            lines.append(f"{name}: {value.splitlines()[0] if value else ''}")
    lines.append(f"Content-Length: {len(response.body)}")
    lines.append("Connection: keep-alive" if keep_alive else "Connection: close")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", errors="replace")
    return head + response.body


def _read_line(stream: BinaryIO, limit: int) -> bytes:
    line = stream.readline(limit + 1)
    if len(line) > limit:
        raise BadRequestError("line too long")
    return line


def _read_chunked(stream: BinaryIO, max_body: int) -> tuple[bytes, bool]:
    parts: list[bytes] = []
    total = 0
    too_large = False
    while True:
        size_line = _read_line(stream, 1024).split(b";", 1)[0].strip()
        try:
            size = int(size_line, 16)
        except ValueError as exc:
            raise BadRequestError("bad chunk size") from exc
        if size < 0:
            raise BadRequestError("bad chunk size")
        if size == 0:
            while _read_line(stream, MAX_HEADER_LINE) not in (b"\r\n", b"\n", b""):
                pass  # trailers are read and dropped
            return b"".join(parts), too_large
        chunk = stream.read(size)
        if len(chunk) != size:
            raise BadRequestError("truncated chunk")
        stream.read(2)
        total += size
        if total > max_body:
            too_large = True
            parts.clear()
            if total > _DRAIN_LIMIT:
                raise BadRequestError("body far over the limit")
        else:
            parts.append(chunk)


def read_request(
    stream: BinaryIO, connection: socket.socket, client_ip: str, max_body: int
) -> HttpRequest | None:
    """The next request on the connection; None when the client closed it between requests."""
    line = _read_line(stream, MAX_REQUEST_LINE)
    while line in (b"\r\n", b"\n"):  # tolerated between keep-alive requests
        line = _read_line(stream, MAX_REQUEST_LINE)
    if not line:
        return None
    try:
        method, target, version = line.decode("latin-1").strip().split(" ")
    except ValueError as exc:
        raise BadRequestError("malformed request line") from exc
    if not version.startswith("HTTP/1.") or not method.isalpha() or not target.startswith("/"):
        raise BadRequestError("unsupported request line")
    headers: list[tuple[str, str]] = []
    header_bytes = len(line)
    while True:
        try:
            header_line = _read_line(stream, MAX_HEADER_LINE)
        except BadRequestError as exc:
            raise HeadersTooLargeError("header line too long") from exc
        if header_line in (b"\r\n", b"\n"):
            break
        header_bytes += len(header_line)
        if header_bytes > MAX_HEADER_BYTES:
            raise HeadersTooLargeError("request line and headers over the limit")
        if not header_line:
            raise BadRequestError("connection closed inside the headers")
        name, separator, value = header_line.decode("latin-1").partition(":")
        if not separator or not name or name != name.strip():
            raise BadRequestError("malformed header")
        headers.append((name, value.strip()))
        if len(headers) > MAX_HEADERS:
            raise BadRequestError("too many headers")
    request = HttpRequest(method.upper(), target, version, headers, b"", client_ip)
    if (request.header("Expect") or "").lower() == "100-continue":
        connection.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
    if "chunked" in (request.header("Transfer-Encoding") or "").lower():
        request.body, request.body_too_large = _read_chunked(stream, max_body)
        return request
    length_text = request.header("Content-Length")
    if length_text is None:
        return request
    if not length_text.isdigit():
        raise BadRequestError("bad Content-Length")
    length = int(length_text)
    if length > max_body:
        if length > _DRAIN_LIMIT:
            raise BadRequestError("body far over the limit")
        remaining = length
        while remaining:
            drained = stream.read(min(remaining, 1 << 20))
            if not drained:
                raise BadRequestError("truncated body")
            remaining -= len(drained)
        request.body_too_large = True
        return request
    request.body = stream.read(length)
    if len(request.body) != length:
        raise BadRequestError("truncated body")
    return request


def _keep_alive(request: HttpRequest) -> bool:
    connection = (request.header("Connection") or "").lower()
    if request.version == "HTTP/1.0":
        return connection == "keep-alive"
    return connection != "close"


def _linger(connection: socket.socket) -> None:
    """Close gracefully after an early answer: unread request bytes would make the kernel send a
    reset, and the client would lose the answer it has not read yet."""
    with contextlib.suppress(OSError):
        connection.shutdown(socket.SHUT_WR)
        connection.settimeout(1.0)
        drained = 0
        while drained < _DRAIN_LIMIT:
            chunk = connection.recv(65536)
            if not chunk:
                break
            drained += len(chunk)


class HttpServer:
    """Serves ``handler`` on ``host``:``port`` (0 picks a free port) until :meth:`stop`."""

    def __init__(
        self,
        handler: Handler,
        host: str,
        port: int,
        *,
        max_body: int,
        bad_request: Callable[[int], HttpResponse],
    ) -> None:
        self._handler = handler
        self._max_body = max_body
        self._bad_request = bad_request
        self._listener = socket.create_server((host, port), reuse_port=False, backlog=256)
        self.host = host
        self.port = int(self._listener.getsockname()[1])
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._accept_loop, name="gateway-accept", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                connection, address = self._listener.accept()
            except OSError:
                if self._stopping.is_set():
                    return
                continue
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            connection.settimeout(IDLE_TIMEOUT_SECONDS)
            with self._lock:
                self._connections.add(connection)
            threading.Thread(
                target=self._serve, args=(connection, str(address[0])), name="gateway-conn", daemon=True
            ).start()

    def _serve(self, connection: socket.socket, client_ip: str) -> None:
        stream = cast(BinaryIO, connection.makefile("rb", buffering=65536))
        try:
            while not self._stopping.is_set():
                try:
                    request = read_request(stream, connection, client_ip, self._max_body)
                except BadRequestError as exc:
                    _log.debug("bad request from %s: %s", client_ip, exc)
                    connection.sendall(encode_response(self._bad_request(exc.status), keep_alive=False))
                    _linger(connection)
                    return
                if request is None:
                    return
                keep_alive = _keep_alive(request)
                response = self._handler(request)
                keep_alive = keep_alive and not response.close
                connection.sendall(encode_response(response, keep_alive))
                if not keep_alive:
                    return
        except (OSError, ValueError):
            return  # the client went away or timed out
        finally:
            with contextlib.suppress(OSError):
                stream.close()
                connection.close()
            with self._lock:
                self._connections.discard(connection)
