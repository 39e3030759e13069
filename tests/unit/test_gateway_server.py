"""The local gateway's HTTP server (local/gateway/server.py): request parsing, keep-alive, and
streamed answers written as they are produced, with the client's departure reported."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from local.gateway import server as server_module
from local.gateway.server import (
    BadRequestError,
    HeadersTooLargeError,
    HttpRequest,
    HttpResponse,
    HttpServer,
    RequestParser,
    ResponseStream,
    encode_response,
)


def _parse(raw: bytes, max_body: int = 1024, *, byte_by_byte: bool = False) -> HttpRequest | None:
    parser = RequestParser("127.0.0.1", max_body)
    found = None
    for piece in [raw[i : i + 1] for i in range(len(raw))] if byte_by_byte else [raw]:
        parser.feed(piece)
        found = found or parser.next_request()
    if found is None:
        parser.at_eof()
    return found


# ------------------------------------------------------------------------------ parsing


@pytest.mark.parametrize("byte_by_byte", [False, True])
def test_request_with_repeated_headers_and_body(byte_by_byte: bool) -> None:
    raw = b"POST /x?a=1 HTTP/1.1\r\nX-A: 1\r\nx-a: 2\r\nContent-Length: 3\r\n\r\nabcNEXT"
    request = _parse(raw, byte_by_byte=byte_by_byte)
    assert request is not None
    assert (request.method, request.target, request.body) == ("POST", "/x?a=1", b"abc")
    assert request.header("X-A") == "2"
    assert request.headers == [("X-A", "1"), ("x-a", "2"), ("Content-Length", "3")]


def test_expect_continue_is_noticed_before_the_body_comes() -> None:
    parser = RequestParser("127.0.0.1", 1024)
    parser.feed(b"PUT /x HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n")
    assert parser.next_request() is None and parser.continue_wanted
    parser.feed(b"ok")
    request = parser.next_request()
    assert request is not None and request.body == b"ok"


@pytest.mark.parametrize("byte_by_byte", [False, True])
def test_chunked_body_and_an_oversized_one(byte_by_byte: bool) -> None:
    chunked = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    request = _parse(chunked, byte_by_byte=byte_by_byte)
    assert request is not None and request.body == b"abcde"
    too_big = _parse(
        b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n12345", max_body=4, byte_by_byte=byte_by_byte
    )
    assert too_big is not None and too_big.body_too_large and too_big.body == b""


def test_a_request_after_an_oversized_body_is_read_whole() -> None:
    parser = RequestParser("127.0.0.1", 4)
    parser.feed(b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n12345")
    assert parser.next_request() is None  # the rest of the body is read (and dropped) first
    parser.feed(b"67890GET /next HTTP/1.1\r\n\r\n")
    first = parser.next_request()
    assert first is not None and first.body_too_large
    second = parser.next_request()
    assert second is not None and second.target == "/next"


def test_closed_connection_between_requests_is_none() -> None:
    assert _parse(b"") is None


@pytest.mark.parametrize(
    "raw",
    [
        b"GET\r\n\r\n",
        b"GET /x HTTP/2\r\n\r\n",
        b"GET x HTTP/1.1\r\n\r\n",
        b"GET /x HTTP/1.1\r\n bad: header\r\n\r\n",
        b"GET /x HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        b"POST /x HTTP/1.1\r\nContent-Length: 10\r\n\r\nshort",
        b"GET /x HTTP/1.1\r\nX: y\r\n",
    ],
)
def test_malformed_requests_raise_bad_request(raw: bytes) -> None:
    with pytest.raises(BadRequestError):
        _parse(raw)


def test_headers_over_api_gateways_limit_are_a_431() -> None:
    with pytest.raises(HeadersTooLargeError):
        _parse(b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 11_000 + b"\r\n\r\n")


def test_answers_are_one_piece_with_length_and_no_injected_lines() -> None:
    encoded = encode_response(HttpResponse(200, [("X-A", "1\r\nSet-Cookie: evil=1")], b"{}"), keep_alive=True)
    assert encoded == b"HTTP/1.1 200 OK\r\nX-A: 1\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\n{}"


# ------------------------------------------------------------------------------ the server, live


@pytest.fixture
def serve() -> Iterator[Callable[[Callable[[HttpRequest], HttpResponse]], HttpServer]]:
    started: list[HttpServer] = []

    def start(handler: Callable[[HttpRequest], HttpResponse]) -> HttpServer:
        server = HttpServer(
            handler,
            "127.0.0.1",
            0,
            max_body=1024,
            bad_request=lambda status: HttpResponse(status, [("Content-Type", "text/plain")], b"bad"),
        )
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


class Client:
    """A raw keep-alive client that reads answers exactly as they arrive."""

    def __init__(self, port: int) -> None:
        self.socket = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buffer = b""

    def send(self, raw: bytes) -> None:
        self.socket.sendall(raw)

    def _fill(self) -> None:
        data = self.socket.recv(65536)
        if not data:
            raise ConnectionError("closed")
        self.buffer += data

    def read_until(self, marker: bytes) -> bytes:
        while marker not in self.buffer:
            self._fill()
        found, _, self.buffer = self.buffer.partition(marker)
        return found + marker

    def read(self, size: int) -> bytes:
        while len(self.buffer) < size:
            self._fill()
        found, self.buffer = self.buffer[:size], self.buffer[size:]
        return found

    def head(self) -> dict[str, str]:
        lines = self.read_until(b"\r\n\r\n").decode().split("\r\n")
        headers = {
            name.lower(): value.strip()
            for name, _, value in (line.partition(":") for line in lines[1:] if line)
        }
        headers[":status"] = lines[0].split(" ")[1]
        return headers

    def answer(self) -> tuple[dict[str, str], bytes]:
        headers = self.head()
        return headers, self.read(int(headers["content-length"]))

    def chunk(self) -> bytes:
        size = int(self.read_until(b"\r\n")[:-2], 16)
        data = self.read(size)
        assert self.read(2) == b"\r\n"
        return data

    def closed_by_server(self) -> bool:
        try:
            self._fill()
        except (ConnectionError, OSError):
            return True
        return False


def test_keep_alive_answers_pipelined_requests_in_order(serve) -> None:
    # Given a server that echoes the path
    server = serve(lambda request: HttpResponse(200, [], request.target.encode()))
    client = Client(server.port)
    # When two requests are sent at once on one connection
    client.send(b"GET /one HTTP/1.1\r\nHost: x\r\n\r\nGET /two HTTP/1.1\r\nHost: x\r\n\r\n")
    # Then both are answered, in order, on it
    assert client.answer()[1] == b"/one"
    assert client.answer()[1] == b"/two"


def test_a_malformed_request_gets_400_and_the_connection_closes(serve) -> None:
    server = serve(lambda request: HttpResponse(200, [], b"never"))
    client = Client(server.port)
    client.send(b"NOT HTTP\r\n\r\n")
    headers, body = client.answer()
    assert headers[":status"] == "400" and headers["connection"] == "close" and body == b"bad"
    assert client.closed_by_server()


def test_a_streamed_answer_reaches_the_client_chunk_by_chunk_as_produced(serve) -> None:
    # Given a handler whose body a producer thread writes, one chunk only once the client has the last
    client_has = [threading.Event(), threading.Event()]

    def produce(stream: ResponseStream) -> None:
        for number, seen in enumerate(client_has):
            stream.write(f"data: {number}\n\n".encode())
            seen.wait(10)
        stream.end()

    def handler(request: HttpRequest) -> HttpResponse:
        stream = ResponseStream()
        threading.Thread(target=produce, args=(stream,)).start()
        return HttpResponse(200, [("Content-Type", "text/event-stream")], stream)

    server = serve(handler)
    client = Client(server.port)
    client.send(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
    # When the client reads: the head, then each chunk (the producer waits for it before the next)
    headers = client.head()
    assert headers["transfer-encoding"] == "chunked" and "content-length" not in headers
    assert client.chunk() == b"data: 0\n\n"
    client_has[0].set()
    assert client.chunk() == b"data: 1\n\n"
    client_has[1].set()
    # Then the body ends, and the connection serves the next request
    assert client.chunk() == b""
    client.send(b"GET /after HTTP/1.1\r\nHost: x\r\n\r\n")
    assert client.head()[":status"] == "200"


def test_the_producer_learns_promptly_that_the_client_went_away(serve) -> None:
    # Given a stream whose producer writes a chunk, then waits for the client to leave
    streams: list[ResponseStream] = []

    def handler(request: HttpRequest) -> HttpResponse:
        stream = ResponseStream()
        stream.write(b"data: first\n\n")
        streams.append(stream)
        return HttpResponse(200, [("Content-Type", "text/event-stream")], stream)

    server = serve(handler)
    client = Client(server.port)
    client.send(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
    client.head()
    assert client.chunk() == b"data: first\n\n"
    # When the client closes the connection mid-stream
    client.socket.close()
    # Then the stream says so at once, and refuses further chunks
    assert streams[0].disconnected.wait(5)
    assert streams[0].write(b"data: late\n\n") is False
    assert streams[0].finished.is_set()


def test_a_producer_ahead_of_a_slow_client_waits_and_is_released_when_it_leaves(serve) -> None:
    # Given a producer writing far more than the stream buffers, to a client that reads nothing
    outcome: list[bool] = []
    streams: list[ResponseStream] = []

    def produce(stream: ResponseStream) -> None:
        written = True
        while written:
            written = stream.write(b"x" * 65536)
        outcome.append(written)

    def handler(request: HttpRequest) -> HttpResponse:
        stream = ResponseStream(max_buffered=128 * 1024)
        streams.append(stream)
        threading.Thread(target=produce, args=(stream,), daemon=True).start()
        return HttpResponse(200, [], stream)

    server = serve(handler)
    client = Client(server.port)
    client.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    client.send(b"GET /flood HTTP/1.1\r\nHost: x\r\n\r\n")
    deadline = time.monotonic() + 10
    while not streams and time.monotonic() < deadline:
        time.sleep(0.01)
    # When the client leaves without reading
    time.sleep(0.5)
    assert not outcome  # the producer is held back, not buffering without end
    client.socket.close()
    # Then the waiting write returns False
    deadline = time.monotonic() + 10
    while not outcome and time.monotonic() < deadline:
        time.sleep(0.01)
    assert outcome == [False]


def test_an_http_1_0_stream_ends_with_the_connection(serve) -> None:
    def handler(request: HttpRequest) -> HttpResponse:
        stream = ResponseStream()
        stream.write(b"one,")
        stream.write(b"two")
        stream.end()
        return HttpResponse(200, [], stream)

    server = serve(handler)
    client = Client(server.port)
    client.send(b"GET /stream HTTP/1.0\r\n\r\n")
    headers = client.head()
    assert "transfer-encoding" not in headers and headers["connection"] == "close"
    while not client.closed_by_server():
        pass
    assert client.buffer == b"one,two"


def test_a_body_over_the_limit_is_handed_on_marked_and_the_connection_stays_usable(serve) -> None:
    server = serve(lambda request: HttpResponse(413 if request.body_too_large else 200, [], request.body))
    client = Client(server.port)
    client.send(b"POST /big HTTP/1.1\r\nContent-Length: 2000\r\n\r\n" + b"a" * 2000)
    assert client.answer()[0][":status"] == "413"
    client.send(b"POST /small HTTP/1.1\r\nContent-Length: 2\r\n\r\nok")
    assert client.answer()[1] == b"ok"


# ------------------------------------------------------------------------------ idle connections and on_loop


def test_an_idle_keep_alive_connection_is_closed_and_a_busy_one_is_not(
    serve: Callable[[Callable[[HttpRequest], HttpResponse]], HttpServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a server whose idle timeout is 0.6 s, and two keep-alive clients
    monkeypatch.setattr(server_module, "IDLE_TIMEOUT_SECONDS", 0.6)
    server = serve(lambda request: HttpResponse(200, [], b"ok"))
    busy, idle = Client(server.port), Client(server.port)
    # When one sends a request every 0.2 s for 1.4 s and the other sends one and then nothing
    idle.send(b"GET /once HTTP/1.1\r\n\r\n")
    assert idle.answer()[1] == b"ok"
    for _ in range(7):
        busy.send(b"GET /again HTTP/1.1\r\n\r\n")
        assert busy.answer()[1] == b"ok"
        time.sleep(0.2)
    # Then the idle one was closed by the server, and the busy one still answers
    idle.socket.settimeout(2)
    assert idle.socket.recv(1) == b""
    busy.send(b"GET /last HTTP/1.1\r\n\r\n")
    assert busy.answer()[1] == b"ok"


def test_requests_answered_on_the_loop_skip_the_handler_and_keep_their_order() -> None:
    # Given a server whose on_loop answers /loop itself (now, later on the loop, or from another
    # thread) and leaves the rest to the handler
    handled: list[str] = []
    server: HttpServer

    def on_loop(request: HttpRequest, complete: Callable[[HttpResponse], None]) -> bool:
        answer = HttpResponse(200, [], f"loop {request.target}".encode())
        if request.target == "/loop/now":
            complete(answer)
        elif request.target == "/loop/later":
            server.loop.call_later(0.05, complete, answer)
        elif request.target == "/loop/thread":
            threading.Timer(0.05, complete, (answer,)).start()
        else:
            return False
        return True

    def handler(request: HttpRequest) -> HttpResponse:
        handled.append(request.target)
        return HttpResponse(200, [], f"thread {request.target}".encode())

    server = HttpServer(
        handler,
        "127.0.0.1",
        0,
        max_body=1024,
        bad_request=lambda status: HttpResponse(status, [], b"bad"),
        on_loop=on_loop,
    )
    server.start()
    try:
        client = Client(server.port)
        # When four requests are pipelined on one connection
        targets = ["/loop/later", "/elsewhere", "/loop/thread", "/loop/now"]
        client.send(b"".join(f"GET {target} HTTP/1.1\r\n\r\n".encode() for target in targets))
        bodies = [client.answer()[1] for _ in targets]
    finally:
        server.stop()
    # Then each is answered in order, and only the one on_loop declined reached the handler
    assert bodies == [b"loop /loop/later", b"thread /elsewhere", b"loop /loop/thread", b"loop /loop/now"]
    assert handled == ["/elsewhere"]
