"""The local gateway's HTTP/1.1 server: one asyncio event loop for every connection, the gateway's
pipeline on a pool of threads, and streamed answers as a first-class kind of body.

- **One I/O loop.** Every connection is an :class:`asyncio.Protocol` on one event loop in one
  thread: it parses requests as bytes arrive (:class:`RequestParser`), hands each complete one to
  the handler on a thread of a pool (the handler blocks: it invokes functions), and writes the
  answer in one piece when it comes back. Idle keep-alive connections cost no thread.
- **Streamed answers.** A handler may answer with a :class:`ResponseStream` as the body: another
  thread writes chunks into it as it produces them, and the loop sends each one as it comes
  (chunked transfer encoding, nothing buffered on the way), then the end. When the client goes
  away mid-stream, the stream's ``disconnected`` event is set at once and ``write`` answers
  False, so the producer learns it promptly; a slow client makes ``write`` wait (the stream
  buffers a bounded amount) instead of growing memory.
- **Robustness.** Whatever the client sends, the connection gets an HTTP answer or is closed: a
  malformed request gets the gateway's 400 (431 for headers over API Gateway's 10 KB), then the
  connection is closed gracefully (the rest of the request is read and dropped, so the client
  reads the answer instead of a reset). A body over the limit is read and dropped, and the request
  is handed on marked ``body_too_large`` (the gateway answers 413 in API Gateway's order).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

_log = logging.getLogger("tenantry.local.gateway")

MAX_REQUEST_LINE = 16 * 1024
MAX_HEADER_LINE = 16 * 1024
MAX_HEADERS = 200
# API Gateway's quota for REST APIs: the request line and header values together, in bytes.
MAX_HEADER_BYTES = 10 * 1024
IDLE_TIMEOUT_SECONDS = 75.0
# A body this far over the limit is not worth reading to the end: the connection is closed.
_DRAIN_LIMIT = 64 * 1024 * 1024
# Bytes a connection may hold unparsed while its request is being handled (pipelined requests).
_READ_AHEAD = 1024 * 1024
_LINGER_SECONDS = 1.0
HANDLER_THREADS = 128


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


class ResponseStream:
    """A body produced while it is sent: a producer thread :meth:`write`\\ s chunks and
    :meth:`end`\\ s it; the server sends each chunk as it comes.

    ``disconnected`` is set when the client went away (or the server stopped) before the end;
    ``finished`` when the server is done with the stream either way (the end sent, or the client
    gone): the moment an access log measures a streamed answer's latency to. :meth:`abort` ends it
    without the end of the body (the client sees it cut off), and ``sent_bytes`` counts the body's
    bytes handed to the connection."""

    def __init__(self, max_buffered: int = 256 * 1024) -> None:
        self._state = threading.Condition()
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._max_buffered = max_buffered
        self._ended = False
        self._aborted = False
        self._wake: Callable[[], object] | None = None
        self._done: list[Callable[[ResponseStream], None]] = []
        self.sent_bytes = 0
        self.disconnected = threading.Event()
        self.finished = threading.Event()

    def write(self, chunk: bytes) -> bool:
        """Send ``chunk`` (as soon as the connection can take it); False once the client is gone,
        or the stream ended. Waits while ``max_buffered`` bytes are already waiting for a slow
        client."""
        with self._state:
            while self._buffered >= self._max_buffered and not self.disconnected.is_set():
                self._state.wait()
            if self.disconnected.is_set() or self._ended:
                return False
            if chunk:
                self._chunks.append(bytes(chunk))
                self._buffered += len(chunk)
            wake = self._wake
        if wake is not None:
            wake()
        return True

    def end(self) -> None:
        """No more chunks: the server sends the end of the body."""
        with self._state:
            self._ended = True
            wake = self._wake
        if wake is not None:
            wake()

    def abort(self) -> None:
        """End the stream without the end of the body: what is written goes out, then the
        connection closes, so the client knows the body was cut off (a chunked body without its
        last chunk)."""
        with self._state:
            self._aborted = self._ended = True
            wake = self._wake
        if wake is not None:
            wake()

    def add_done_callback(self, callback: Callable[[ResponseStream], None]) -> None:
        """Call ``callback`` (on the server's loop: keep it short) once the stream is finished."""
        with self._state:
            if not self.finished.is_set():
                self._done.append(callback)
                return
        callback(self)

    @property
    def aborted(self) -> bool:
        return self._aborted

    # ------------------------------------------------------------------ the server's side
    def _attach(self, wake: Callable[[], object]) -> None:
        with self._state:
            self._wake = wake
        wake()

    def _take(self) -> tuple[list[bytes], bool]:
        """The chunks written since the last take, and whether the stream has ended."""
        with self._state:
            chunks = list(self._chunks)
            self._chunks.clear()
            self.sent_bytes += self._buffered
            self._buffered = 0
            self._state.notify_all()
            return chunks, self._ended

    def _close(self, *, client_gone: bool) -> None:
        with self._state:
            if client_gone and not self.finished.is_set():
                self.disconnected.set()
            self._state.notify_all()
            first = not self.finished.is_set()
            self.finished.set()
            callbacks, self._done = self._done, []
        if first:
            for callback in callbacks:
                try:
                    callback(self)
                except Exception:  # noqa: BLE001 - a callback's bug must not break the loop
                    _log.exception("a stream's done callback failed")


@dataclass
class HttpResponse:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes | ResponseStream = b""
    close: bool = False


Handler = Callable[[HttpRequest], HttpResponse]
# A request answered on the server's loop: (the request, its answer's callback) -> taken or not.
LoopHandler = Callable[[HttpRequest, Callable[[HttpResponse], None]], bool]


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


def _head(response: HttpResponse, keep_alive: bool, framing: str) -> bytes:
    lines = [f"HTTP/1.1 {response.status} {_reason(response.status)}"]
    for name, value in response.headers:
        if name.lower() not in ("content-length", "connection", "transfer-encoding"):
            # Header injection through a handler's header value is cut off at the line break.
            lines.append(f"{name}: {value.splitlines()[0] if value else ''}")
    if framing:
        lines.append(framing)
    lines.append("Connection: keep-alive" if keep_alive else "Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", errors="replace")


def encode_response(response: HttpResponse, keep_alive: bool) -> bytes:
    """A whole answer (status line, headers, body) in one piece, with its Content-Length."""
    body = response.body if isinstance(response.body, bytes) else b""
    return _head(response, keep_alive, f"Content-Length: {len(body)}") + body


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


class RequestParser:
    """HTTP/1.x requests from bytes as they arrive: :meth:`feed` them, take :meth:`next_request`."""

    def __init__(self, client_ip: str, max_body: int) -> None:
        self._client_ip = client_ip
        self._max_body = max_body
        self._buffer = bytearray()
        self._request: HttpRequest | None = None  # its head parsed, its body still coming
        self._length = 0  # Content-Length of the body being read
        self._discard = 0  # bytes of an oversized body still to drop
        self._chunked = False
        self._chunks: list[bytes] = []
        self._chunk_total = 0
        self.continue_wanted = False  # a head with Expect: 100-continue was just parsed

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def feed(self, data: bytes) -> None:
        if self._discard:
            dropped = min(self._discard, len(data))
            self._discard -= dropped
            data = data[dropped:]
        self._buffer += data

    def at_eof(self) -> None:
        """The client closed its side: a request cut short is a bad request."""
        if self._request is not None or self._discard or self._buffer.strip():
            raise BadRequestError("the connection closed inside a request")

    def next_request(self) -> HttpRequest | None:
        """The next complete request, or None until more bytes come."""
        if self._request is None and not self._parse_head():
            return None
        request = self._request
        assert request is not None
        if self._discard:
            return None
        if self._chunked:
            if not self._read_chunks(request):
                return None
        elif request.body_too_large:
            pass  # dropped as it came
        elif self._length:
            if len(self._buffer) < self._length:
                return None
            request.body = bytes(self._buffer[: self._length])
            del self._buffer[: self._length]
        self._request = None
        return request

    def _parse_head(self) -> bool:
        while self._buffer[:2] == b"\r\n" or self._buffer[:1] == b"\n":  # between keep-alive requests
            del self._buffer[: 2 if self._buffer[:1] == b"\r" else 1]
        end = self._buffer.find(b"\r\n\r\n")
        size = end + 4 if end >= 0 else -1
        if end < 0:
            bare = self._buffer.find(b"\n\n")
            size = bare + 2 if bare >= 0 else -1
        if size < 0:
            first_line = self._buffer.find(b"\n")
            if first_line < 0 and len(self._buffer) > MAX_REQUEST_LINE:
                raise BadRequestError("request line too long")
            if first_line >= 0 and len(self._buffer) - first_line > MAX_HEADER_BYTES + MAX_HEADER_LINE:
                raise HeadersTooLargeError("request line and headers over the limit")
            return False
        head = bytes(self._buffer[:size])
        del self._buffer[:size]
        self._request = self._request_of(head.decode("latin-1").splitlines())
        return True

    def _request_of(self, lines: list[str]) -> HttpRequest:
        line = lines[0] if lines else ""
        if len(line) > MAX_REQUEST_LINE:
            raise BadRequestError("request line too long")
        try:
            method, target, version = line.strip().split(" ")
        except ValueError as exc:
            raise BadRequestError("malformed request line") from exc
        if not version.startswith("HTTP/1.") or not method.isalpha() or not target.startswith("/"):
            raise BadRequestError("unsupported request line")
        headers: list[tuple[str, str]] = []
        header_bytes = len(line) + 2
        for header_line in lines[1:]:
            if not header_line:
                continue
            if len(header_line) > MAX_HEADER_LINE:
                raise HeadersTooLargeError("header line too long")
            header_bytes += len(header_line) + 2
            if header_bytes > MAX_HEADER_BYTES:
                raise HeadersTooLargeError("request line and headers over the limit")
            name, separator, value = header_line.partition(":")
            if not separator or not name or name != name.strip():
                raise BadRequestError("malformed header")
            headers.append((name, value.strip()))
            if len(headers) > MAX_HEADERS:
                raise BadRequestError("too many headers")
        request = HttpRequest(method.upper(), target, version, headers, b"", self._client_ip)
        self.continue_wanted = (request.header("Expect") or "").lower() == "100-continue"
        self._chunked = "chunked" in (request.header("Transfer-Encoding") or "").lower()
        self._chunks, self._chunk_total, self._length = [], 0, 0
        if self._chunked:
            return request
        length_text = request.header("Content-Length")
        if length_text is None:
            return request
        if not length_text.isdigit():
            raise BadRequestError("bad Content-Length")
        length = int(length_text)
        if length > self._max_body:
            if length > _DRAIN_LIMIT:
                raise BadRequestError("body far over the limit")
            request.body_too_large = True
            dropped = min(length, len(self._buffer))
            del self._buffer[:dropped]
            self._discard = length - dropped
        else:
            self._length = length
        return request

    def _read_chunks(self, request: HttpRequest) -> bool:
        """Consume complete chunks; True once the last one (and the trailers) arrived."""
        while True:
            line_end = self._buffer.find(b"\n")
            if line_end < 0:
                if len(self._buffer) > 1024:
                    raise BadRequestError("bad chunk size")
                return False
            size_text = bytes(self._buffer[:line_end]).split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError as exc:
                raise BadRequestError("bad chunk size") from exc
            if size < 0:
                raise BadRequestError("bad chunk size")
            if size == 0:
                trailer_end = self._buffer.find(b"\r\n\r\n", line_end - 1)
                if trailer_end < 0:
                    bare = self._buffer.find(b"\n\n", line_end)
                    if bare < 0:
                        return False
                    del self._buffer[: bare + 2]
                else:
                    del self._buffer[: trailer_end + 4]
                request.body = b"".join(self._chunks)
                self._chunks = []
                return True
            start = line_end + 1
            if len(self._buffer) < start + size + 2:
                return False
            data = bytes(self._buffer[start : start + size])
            del self._buffer[: start + size + 2]
            self._chunk_total += size
            if self._chunk_total > self._max_body:
                if self._chunk_total > _DRAIN_LIMIT:
                    raise BadRequestError("body far over the limit")
                request.body_too_large = True
                self._chunks = []
            else:
                self._chunks.append(data)


def _keep_alive(request: HttpRequest) -> bool:
    connection = (request.header("Connection") or "").lower()
    if request.version == "HTTP/1.0":
        return connection == "keep-alive"
    return connection != "close"


class _Connection(asyncio.Protocol):
    """One client connection on the server's loop."""

    def __init__(self, server: HttpServer) -> None:
        self._server = server
        self._loop = server.loop
        self._transport: asyncio.Transport | None = None
        self._parser = RequestParser("", server.max_body)
        self._busy = False  # a request is with the handler, or its stream is being sent
        self._closing = False
        self._stream: ResponseStream | None = None
        self._stream_chunked = True
        self._keep_alive = True
        self._paused_writing = False
        self._idle: asyncio.TimerHandle | None = None
        self._idle_since: float | None = None  # when the connection last became idle; None: busy
        self._in_on_loop = False

    # ------------------------------------------------------------------ asyncio's callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        peer = transport.get_extra_info("peername")
        self._parser = RequestParser(str(peer[0]) if peer else "", self._server.max_body)
        self._server.connections.add(self)
        self._arm_idle_timer()

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return  # lingering after an early answer: the rest is dropped
        self._parser.feed(data)
        if self._busy:
            if self._parser.buffered > _READ_AHEAD and self._transport is not None:
                self._transport.pause_reading()
            return
        self._next()

    def eof_received(self) -> bool:
        if self._closing:
            return True  # an early answer is lingering: it closes the connection itself
        if self._stream is not None:
            return False  # the client went away mid-stream: connection_lost tells the producer
        if self._busy:
            self._keep_alive = False  # answer what is in flight, then close
            return True
        try:
            self._parser.at_eof()
        except BadRequestError as exc:
            self._answer_and_linger(self._server.bad_request(exc.status))
            return True
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        self._stop_idle_timer()
        self._server.connections.discard(self)
        if self._stream is not None:
            self._stream._close(client_gone=True)
            self._stream = None

    def pause_writing(self) -> None:
        self._paused_writing = True

    def resume_writing(self) -> None:
        self._paused_writing = False
        if self._stream is not None:
            self._pump()

    # ------------------------------------------------------------------ requests
    def _next(self) -> None:
        """Hand the next complete request to the handler, if one is there."""
        try:
            request = self._parser.next_request()
        except BadRequestError as exc:
            _log.debug("bad request: %s", exc)
            self._answer_and_linger(self._server.bad_request(exc.status))
            return
        if self._parser.continue_wanted and request is None and self._transport is not None:
            self._parser.continue_wanted = False
            self._transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        if request is None:
            return
        self._busy = True
        self._cancel_idle_timer()
        self._keep_alive = _keep_alive(request)
        on_loop = self._server.on_loop
        if on_loop is not None:
            self._in_on_loop = True
            try:
                taken = on_loop(request, lambda response: self._complete(request, response))
            except Exception:  # noqa: BLE001 - the handler's bug is a 500, never a traceback
                _log.exception("the handler failed on %s %s", request.method, request.target)
                self._loop.call_soon(self._deliver, request, self._server.bad_request(500))
                return
            finally:
                self._in_on_loop = False
            if taken:
                return
        future = self._server.executor.submit(self._server.handler, request)
        future.add_done_callback(lambda done: self._loop.call_soon_threadsafe(self._respond, request, done))

    def _complete(self, request: HttpRequest, response: HttpResponse) -> None:
        """``on_loop``'s answer: sent now when it comes from one of the loop's callbacks (a
        sandbox's answer read), else from the loop, soon (never within ``on_loop`` itself, where
        sending would start the next pipelined request inside this one)."""
        if not self._in_on_loop and self._server.on_loop_thread():
            self._deliver(request, response)
        else:
            self._server.call_on_loop(self._deliver, request, response)

    def _respond(self, request: HttpRequest, done: Future[HttpResponse]) -> None:
        try:
            response = done.result()
        except Exception:  # noqa: BLE001 - the handler's bug is a 500, never a traceback
            _log.exception("the handler failed on %s %s", request.method, request.target)
            response = self._server.bad_request(500)
        self._deliver(request, response)

    def _deliver(self, request: HttpRequest, response: HttpResponse) -> None:
        transport = self._transport
        if self._closing or transport is None or transport.is_closing():
            if isinstance(response.body, ResponseStream):
                response.body._close(client_gone=True)
            return
        keep_alive = self._keep_alive and not response.close
        if isinstance(response.body, ResponseStream):
            # HTTP/1.0 has no chunked encoding: the body ends when the connection closes.
            self._stream_chunked = request.version != "HTTP/1.0"
            self._keep_alive = keep_alive and self._stream_chunked
            framing = "Transfer-Encoding: chunked" if self._stream_chunked else ""
            transport.write(_head(response, self._keep_alive, framing))
            self._stream = response.body
            stream = response.body
            stream._attach(lambda: self._wake_stream(stream))
            return
        transport.write(encode_response(response, keep_alive))
        self._finish(keep_alive)

    def _finish(self, keep_alive: bool) -> None:
        self._busy = False
        transport = self._transport
        if transport is None:
            return
        if not keep_alive:
            self._closing = True
            transport.close()
            return
        transport.resume_reading()
        self._arm_idle_timer()
        self._next()

    # ------------------------------------------------------------------ streamed answers
    def _wake_stream(self, stream: ResponseStream) -> None:
        """From the producer's thread: have the loop send what it wrote."""
        self._loop.call_soon_threadsafe(self._pump_if, stream)

    def _pump_if(self, stream: ResponseStream) -> None:
        if self._stream is stream:
            self._pump()

    def _pump(self) -> None:
        stream, transport = self._stream, self._transport
        if stream is None or transport is None or self._paused_writing:
            return
        chunks, ended = stream._take()
        data = [chunk for chunk in chunks if chunk]
        if data:
            transport.write(
                b"".join(_chunk(chunk) for chunk in data) if self._stream_chunked else b"".join(data)
            )
        if ended:
            self._stream = None
            if stream.aborted:
                stream._close(client_gone=False)
                self._finish(keep_alive=False)
                return
            if self._stream_chunked:
                transport.write(b"0\r\n\r\n")
            stream._close(client_gone=False)
            self._finish(self._keep_alive)

    # ------------------------------------------------------------------ closing
    def _answer_and_linger(self, response: HttpResponse) -> None:
        """Answer, then close gracefully: unread request bytes would make the kernel send a reset,
        and the client would lose the answer it has not read yet."""
        transport = self._transport
        if transport is None:
            return
        self._closing = True
        transport.write(encode_response(response, keep_alive=False))
        if transport.can_write_eof():
            transport.write_eof()
        self._loop.call_later(_LINGER_SECONDS, transport.close)

    def _arm_idle_timer(self) -> None:
        """The connection closes after IDLE_TIMEOUT_SECONDS without a request. One timer per
        connection, not one per request: when it fires early (requests came since it was set),
        it sets itself again for the rest of the idle time."""
        self._idle_since = self._loop.time()
        if self._idle is None and self._transport is not None:
            self._idle = self._loop.call_at(self._idle_since + IDLE_TIMEOUT_SECONDS, self._idle_check)

    def _cancel_idle_timer(self) -> None:
        self._idle_since = None  # busy: the timer, if it fires, sets itself again

    def _idle_check(self) -> None:
        self._idle = None
        transport = self._transport
        if transport is None or self._closing:
            return
        if self._idle_since is not None and self._loop.time() - self._idle_since >= IDLE_TIMEOUT_SECONDS:
            transport.close()
            return
        since = self._loop.time() if self._idle_since is None else self._idle_since
        self._idle = self._loop.call_at(since + IDLE_TIMEOUT_SECONDS, self._idle_check)

    def _stop_idle_timer(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None

    def shutdown(self) -> None:
        if self._transport is not None:
            self._transport.abort()


class HttpServer:
    """Serves ``handler`` on ``host``:``port`` (0 picks a free port) until :meth:`stop`.

    ``on_loop``, when given, sees each request first, on the loop's thread: it returns True when
    it answers the request itself, later, through the callback it is handed (from any thread,
    never before it returns), without a thread of the pool; False hands the request to
    ``handler`` on a thread. It must not block."""

    def __init__(
        self,
        handler: Handler,
        host: str,
        port: int,
        *,
        max_body: int,
        bad_request: Callable[[int], HttpResponse],
        handler_threads: int = HANDLER_THREADS,
        on_loop: LoopHandler | None = None,
    ) -> None:
        self.handler = handler
        self.on_loop = on_loop
        self.max_body = max_body
        self.bad_request = bad_request
        self._listener = socket.create_server((host, port), reuse_port=False, backlog=256)
        self.host = host
        self.port = int(self._listener.getsockname()[1])
        self.loop = asyncio.new_event_loop()
        self.executor = ThreadPoolExecutor(max_workers=handler_threads, thread_name_prefix="gateway-request")
        self.connections: set[_Connection] = set()
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._loop_thread = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="gateway-http", daemon=True)
        self._thread.start()
        self._started.wait(10)

    def on_loop_thread(self) -> bool:
        return threading.get_ident() == self._loop_thread

    def call_on_loop(self, callback: Callable[..., object], *args: Any) -> None:
        """``callback(*args)`` on the loop's thread, soon (from the loop's thread or another)."""
        if self.on_loop_thread():
            self.loop.call_soon(callback, *args)
        else:
            self.loop.call_soon_threadsafe(callback, *args)

    def _run(self) -> None:
        self._loop_thread = threading.get_ident()
        asyncio.set_event_loop(self.loop)

        async def serve() -> None:
            self._server = await self.loop.create_server(lambda: _Connection(self), sock=self._listener)
            self._started.set()

        self.loop.run_until_complete(serve())
        self.loop.run_forever()
        with contextlib.suppress(Exception):
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.close()

    def stop(self) -> None:
        def shut() -> None:
            if self._server is not None:
                self._server.close()
            for connection in list(self.connections):
                connection.shutdown()
            self.loop.call_later(0.05, self.loop.stop)

        if self._thread is not None and self._thread.is_alive():
            self.loop.call_soon_threadsafe(shut)
            self._thread.join(timeout=5)
        else:
            self._listener.close()
        self.executor.shutdown(wait=False, cancel_futures=True)

    def running_loop(self) -> Any:
        return self.loop


class ThreadedHttpServer:
    """One thread per connection, each request answered on the thread that read it: for a server
    whose answers are short and whose handler serializes anyway (the embedded AWS, behind its one
    lock), where handing each request to another thread and back cost more than the request. No
    streamed answers."""

    def __init__(
        self,
        handler: Handler,
        host: str,
        port: int,
        *,
        max_body: int,
        bad_request: Callable[[int], HttpResponse],
    ) -> None:
        self.handler = handler
        self.max_body = max_body
        self.bad_request = bad_request
        self._listener = socket.create_server((host, port), reuse_port=False, backlog=256)
        self.host = host
        self.port = int(self._listener.getsockname()[1])
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._accept, name="http-accept", daemon=True)
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

    def _accept(self) -> None:
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
                target=self._serve, args=(connection, str(address[0])), name="http-connection", daemon=True
            ).start()

    def _serve(self, connection: socket.socket, client_ip: str) -> None:
        parser = RequestParser(client_ip, self.max_body)
        try:
            while not self._stopping.is_set():
                try:
                    request = parser.next_request()
                    while request is None:
                        data = connection.recv(65536)
                        if not data:
                            parser.at_eof()
                            return
                        parser.feed(data)
                        if parser.continue_wanted:
                            parser.continue_wanted = False
                            connection.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                        request = parser.next_request()
                except BadRequestError as exc:
                    connection.sendall(encode_response(self.bad_request(exc.status), keep_alive=False))
                    return
                keep_alive = _keep_alive(request)
                response = self.handler(request)
                keep_alive = keep_alive and not response.close
                connection.sendall(encode_response(response, keep_alive))
                if not keep_alive:
                    return
        except OSError:
            return  # the client went away or timed out
        finally:
            with contextlib.suppress(OSError):
                connection.close()
            with self._lock:
                self._connections.discard(connection)
