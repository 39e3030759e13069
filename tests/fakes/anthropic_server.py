"""A fake of Anthropic's Messages API on 127.0.0.1, for the real ``anthropic`` client.

Tests script its answers (success with usage figures, 429, 529, 500, a slow answer) and read back
the requests it received, so they can check what reached the model: the system prompt, the window
of messages, the model name. It binds a free port and stops with the test.
"""

from __future__ import annotations

import json
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


@dataclass
class FakeAnthropic:
    url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    script: list[Reply] = field(default_factory=list)  # consumed first, then ``default``
    default: Reply = field(default_factory=Reply)
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

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length) or b"{}")
            headers = {name.lower(): value for name, value in self.headers.items()}
            reply = fake.next_reply({"path": self.path, "headers": headers, "body": body})
            injector = faults.current()  # FAULTS' model-delay / model-hang, as for AWS's services
            delay = reply.delay_seconds + (injector.model_delay() if injector is not None else 0.0)
            if delay:
                time.sleep(delay)
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

    return Handler


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
