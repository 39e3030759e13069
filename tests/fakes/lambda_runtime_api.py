"""A fake of the Lambda Runtime API (2018-06-01) on 127.0.0.1: what Lambda's execution environment
serves a runtime, so a test can run a real runtime (the streaming functions' bootstrap) in a
subprocess the way Lambda does, hand it invocations and read its answers as Lambda would.

It serves ``GET /runtime/invocation/next`` from a queue (with the request id, deadline, function
ARN, trace id and, when given, the tenant id headers), and records each answer: a buffered
response, an error, or a streamed response (``Lambda-Runtime-Function-Response-Mode: streaming``,
chunked), chunk by chunk with the time each arrived, and its error trailers. An init error is
recorded too.
"""

from __future__ import annotations

import json
import queue
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PREFIX = "/2018-06-01/runtime"
FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:tenantry-ChatFunction"


@dataclass
class RuntimeAnswer:
    """How the runtime answered one invocation."""

    request_id: str
    mode: str = ""  # buffered | streamed | error
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    chunks: list[tuple[float, bytes]] = field(default_factory=list)
    trailers: dict[str, str] = field(default_factory=dict)
    sent_at: float = 0.0
    done: threading.Event = field(default_factory=threading.Event)
    first_chunk: threading.Event = field(default_factory=threading.Event)

    @property
    def streamed_bytes(self) -> bytes:
        return b"".join(data for _, data in self.chunks)


@dataclass
class FakeRuntimeApi:
    address: str = ""
    pending: queue.SimpleQueue[dict[str, Any]] = field(default_factory=queue.SimpleQueue)
    answers: dict[str, RuntimeAnswer] = field(default_factory=dict)
    init_error: dict[str, Any] | None = None
    init_failed: threading.Event = field(default_factory=threading.Event)
    stopping: threading.Event = field(default_factory=threading.Event)

    def send(self, event: Any, *, tenant_id: str | None = None, timeout_s: float = 30.0) -> RuntimeAnswer:
        """Queue an invocation; its answer fills in as the runtime sends it."""
        request_id = str(uuid.uuid4())
        answer = self.answers[request_id] = RuntimeAnswer(request_id)
        answer.sent_at = time.monotonic()
        self.pending.put(
            {
                "request_id": request_id,
                "event": event,
                "deadline_ms": int((time.time() + timeout_s) * 1000),
                "tenant_id": tenant_id,
            }
        )
        return answer

    def invoke(self, event: Any, *, tenant_id: str | None = None, wait_s: float = 60.0) -> RuntimeAnswer:
        answer = self.send(event, tenant_id=tenant_id)
        assert answer.done.wait(wait_s), "the runtime did not answer"
        return answer


def _handler(fake: FakeRuntimeApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: tests read the recorded answers."""

        def _reply(self, status: int, body: bytes = b"{}", headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path != f"{PREFIX}/invocation/next":
                self._reply(404)
                return
            while True:
                try:
                    invocation = fake.pending.get(timeout=0.2)
                    break
                except queue.Empty:
                    if fake.stopping.is_set():
                        self.close_connection = True
                        return
            headers = {
                "Lambda-Runtime-Aws-Request-Id": invocation["request_id"],
                "Lambda-Runtime-Deadline-Ms": str(invocation["deadline_ms"]),
                "Lambda-Runtime-Invoked-Function-Arn": FUNCTION_ARN,
                "Lambda-Runtime-Trace-Id": "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=0",
            }
            if invocation["tenant_id"]:
                headers["Lambda-Runtime-Aws-Tenant-Id"] = invocation["tenant_id"]
            self._reply(200, json.dumps(invocation["event"]).encode(), headers)

        def do_POST(self) -> None:
            path = self.path.removeprefix(PREFIX)
            if path == "/init/error":
                fake.init_error = json.loads(self._read_whole())
                fake.init_failed.set()
                self._reply(202)
                return
            request_id, outcome = path.split("/")[2:]
            answer = fake.answers[request_id]
            answer.headers = {name.lower(): value for name, value in self.headers.items()}
            if outcome == "error":
                answer.mode, answer.body = "error", self._read_whole()
            elif "chunked" in answer.headers.get("transfer-encoding", ""):
                answer.mode = "streamed"
                self._read_chunks(answer)
            else:
                answer.mode, answer.body = "buffered", self._read_whole()
            self._reply(202, b'{"status":"OK"}')
            answer.done.set()

        def _read_whole(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length", "0")))

        def _read_chunks(self, answer: RuntimeAnswer) -> None:
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    break
                data = self.rfile.read(size)
                self.rfile.readline()
                answer.chunks.append((time.monotonic(), data))
                answer.first_chunk.set()
            while True:
                line = self.rfile.readline().decode().strip()
                if not line:
                    return
                name, _, value = line.partition(":")
                answer.trailers[name.strip().lower()] = value.strip()

    return Handler


@contextmanager
def fake_runtime_api() -> Iterator[FakeRuntimeApi]:
    fake = FakeRuntimeApi()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    server.daemon_threads = True
    fake.address = f"127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        fake.stopping.set()
        server.shutdown()
        server.server_close()
