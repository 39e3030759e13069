"""A fake of Anthropic's Messages API on 127.0.0.1, for the real ``anthropic`` client.

Tests script its answers (success with usage figures, 429, 529, 500, a slow answer) and read back
the requests it received, so they can check what reached the model: the system prompt, the window
of messages, the model name. It binds a free port and stops with the test.

A request with ``"stream": true`` is answered the way the real API streams (Server-Sent Events,
chunked): ``message_start`` (with the input tokens), ``content_block_start``, a ``ping``, one
``content_block_delta`` per piece of the reply, ``content_block_stop``, ``message_delta`` (the stop
reason and the output tokens), ``message_stop``. A script can slow the pieces down, send
``event: error`` (``overloaded_error``) after some of them, or drop the connection mid-stream.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from local import faults

ERROR_TYPES = {
    429: "rate_limit_error",
    529: "overloaded_error",
    500: "api_error",
    400: "invalid_request_error",
}


@dataclass
class Reply:
    status: int = 200
    text: str | None = None  # None: "fake reply to: <last user message>"
    input_tokens: int = 11
    output_tokens: int = 7
    delay_seconds: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    # Streaming: the reply's pieces (default: the text a word at a time), the pause before each,
    # and a failure after ``fail_after`` pieces (an overloaded_error event) or ``drop_after`` ones
    # (the connection closes mid-body).
    pieces: list[str] | None = None
    piece_delay: float = 0.0
    fail_after: int | None = None
    drop_after: int | None = None
    stop_reason: str = "end_turn"


@dataclass
class FakeAnthropic:
    url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    script: list[Reply] = field(default_factory=list)  # consumed first, then ``default``
    default: Reply = field(default_factory=Reply)
    # When (time.monotonic(), shared by every process of the machine) each request came and each
    # streamed delta went out: what the stream benchmark measures the stack against.
    stream_log: list[tuple[str, float]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def next_reply(self, request: dict[str, Any]) -> Reply:
        with self._lock:
            self.requests.append(request)
            return self.script.pop(0) if self.script else self.default

    @property
    def last(self) -> dict[str, Any]:
        body: dict[str, Any] = self.requests[-1]["body"]
        return body


def _handler(fake: FakeAnthropic) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: tests read ``fake.requests`` instead."""

        def setup(self) -> None:
            # Every event leaves at once, as the real API's do: with Nagle's algorithm a small write
            # waits for the ACK of the one before it (the function's delayed ACK, about 20 ms).
            super().setup()
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def do_POST(self) -> None:
            arrived = time.monotonic()
            fake.stream_log.append(("request", arrived))
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length) or b"{}")
            headers = {name.lower(): value for name, value in self.headers.items()}
            reply = fake.next_reply({"path": self.path, "headers": headers, "body": body})
            injector = faults.current()  # FAULTS' model-delay / model-hang, as for AWS's services
            delay = reply.delay_seconds + (injector.model_delay() if injector is not None else 0.0)
            if delay:
                time.sleep(delay)
            if reply.status == 200 and body.get("stream"):
                self._stream(reply, body, arrived)
                return
            if reply.status == 200:
                last_user = next(
                    (m["content"] for m in reversed(body.get("messages", [])) if m.get("role") == "user"), ""
                )
                payload: dict[str, Any] = {
                    "id": "msg_fake",
                    "type": "message",
                    "role": "assistant",
                    "model": body.get("model", "unknown"),
                    "content": [{"type": "text", "text": reply.text or f"fake reply to: {last_user}"}],
                    "stop_reason": "end_turn",
                    "stop_sequence": None,
                    "usage": {"input_tokens": reply.input_tokens, "output_tokens": reply.output_tokens},
                }
            else:
                kind = ERROR_TYPES.get(reply.status, "api_error")
                payload = {"type": "error", "error": {"type": kind, "message": f"fake {reply.status}"}}
            data = json.dumps(payload).encode()
            try:
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)
            except OSError:
                pass  # the client gave up (a timeout test)

        def _stream(self, reply: Reply, body: dict[str, Any], arrived: float) -> None:
            text = reply.text or f"fake reply to: {_last_user(body)}"
            pieces = reply.pieces if reply.pieces is not None else _words(text)
            model = body.get("model", "unknown")
            try:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream; charset=utf-8")
                self.send_header("Transfer-Encoding", "chunked")
                self.send_header("request-id", "req_fake_stream")
                self.end_headers()
                self._event(
                    "message_start",
                    {
                        "type": "message_start",
                        "message": {
                            "id": "msg_fake",
                            "type": "message",
                            "role": "assistant",
                            "model": model,
                            "content": [],
                            "stop_reason": None,
                            "stop_sequence": None,
                            "usage": {"input_tokens": reply.input_tokens, "output_tokens": 1},
                        },
                    },
                )
                self._event(
                    "content_block_start",
                    {
                        "type": "content_block_start",
                        "index": 0,
                        "content_block": {"type": "text", "text": ""},
                    },
                )
                self._event("ping", {"type": "ping"})
                for index, piece in enumerate(pieces):
                    if reply.fail_after is not None and index == reply.fail_after:
                        self._event(
                            "error",
                            {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
                        )
                        self._end()
                        return
                    if reply.drop_after is not None and index == reply.drop_after:
                        self.wfile.flush()
                        self.close_connection = True
                        self.connection.shutdown(socket.SHUT_RDWR)
                        return
                    if reply.piece_delay:
                        time.sleep(reply.piece_delay)
                    self._event(
                        "content_block_delta",
                        {
                            "type": "content_block_delta",
                            "index": 0,
                            "delta": {"type": "text_delta", "text": piece},
                        },
                    )
                    fake.stream_log.append(("delta", time.monotonic()))
                self._event("content_block_stop", {"type": "content_block_stop", "index": 0})
                self._event(
                    "message_delta",
                    {
                        "type": "message_delta",
                        "delta": {"stop_reason": reply.stop_reason, "stop_sequence": None},
                        "usage": {"output_tokens": reply.output_tokens},
                    },
                )
                self._event("message_stop", {"type": "message_stop"})
                self._end()
            except OSError:
                pass  # the client gave up (a deadline test)

        def _event(self, name: str, data: dict[str, Any]) -> None:
            payload = f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(payload), payload))
            self.wfile.flush()

        def _end(self) -> None:
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

    return Handler


def _last_user(body: dict[str, Any]) -> str:
    return next((m["content"] for m in reversed(body.get("messages", [])) if m.get("role") == "user"), "")


def _words(text: str) -> list[str]:
    words = text.split(" ")
    return [word if index == 0 else " " + word for index, word in enumerate(words)]


@contextmanager
def fake_anthropic() -> Iterator[FakeAnthropic]:
    fake = FakeAnthropic()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    server.daemon_threads = True
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
