"""The local stack for integration tests: ``tenantry dev`` in a subprocess, on a free port.

The gateway runs in its own process (as ``make dev`` does) so the unit tests' in-process moto
never intercepts its calls. Each stack has its own ``TENANTRY_HOME`` under pytest's tmp folder and
is stopped with SIGTERM at the end, the way Ctrl-C stops ``make dev``.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
OVERLAY = Path(__file__).resolve().parent / "overlay.yaml"
# Short enough for a test to outlive it; the template's 300 s stays the default elsewhere.
TEST_AUTHORIZER_TTL = 2
START_TIMEOUT_SECONDS = 60


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    raw: bytes
    header_list: list[tuple[str, str]] = field(default_factory=list)

    @property
    def json(self) -> Any:
        return json.loads(self.raw) if self.raw else None


@dataclass
class LocalStack:
    url: str
    home: Path
    admin_key: str
    endpoint_url: str
    process: subprocess.Popen[bytes]
    stdout: str

    @property
    def port(self) -> int:
        return int(urlsplit(self.url).port or 0)

    def request(
        self,
        method: str,
        path: str,
        *,
        key: str | None = None,
        body: Any = None,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            all_headers = {"Content-Type": "application/json", **(headers or {})}
            if key is not None:
                all_headers["X-API-Key"] = key
            payload = raw if raw is not None else (None if body is None else json.dumps(body).encode())
            connection.request(method, path, body=payload, headers=all_headers)
            response = connection.getresponse()
            data = response.read()
            header_list = [(name, value) for name, value in response.getheaders()]
            return Answer(response.status, {n.lower(): v for n, v in header_list}, data, header_list)
        finally:
            connection.close()

    def create_tenant(self, tier: str = "basic", tenant_id: str | None = None) -> tuple[str, str]:
        body: dict[str, Any] = {"name": f"Tenant {tier}", "tier": tier}
        if tenant_id is not None:
            body["tenant_id"] = tenant_id
        answer = self.request("POST", "/tenants", key=self.admin_key, body=body)
        assert answer.status == 201, answer.raw
        return str(answer.json["tenant"]["tenant_id"]), str(answer.json["api_key"])

    def aws_client(self, service: str) -> Any:
        return boto3.client(
            service,  # type: ignore[call-overload]
            endpoint_url=self.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return int(self.process.returncode)


def start_stack(
    home: Path,
    *,
    overlay: Path | None = OVERLAY,
    authorizer_ttl: int | None = TEST_AUTHORIZER_TTL,
    extra_args: list[str] | None = None,
    reload: bool = False,
) -> LocalStack:
    home.mkdir(parents=True, exist_ok=True)
    (home / "gateway.json").unlink(missing_ok=True)
    command = [
        sys.executable,
        "-m",
        "local.cli",
        "dev",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--home",
        str(home),
    ]
    command += ["--quiet"]
    if overlay is not None:
        command += ["--overlay", str(overlay)]
    if authorizer_ttl is not None:
        command += ["--authorizer-ttl", str(authorizer_ttl)]
    if not reload:
        command.append("--no-reload")
    command += extra_args or []
    env = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
    output = home / "dev.out"
    with output.open("ab") as sink:
        process = subprocess.Popen(  # noqa: S603 - our own CLI
            command, cwd=REPO_ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT
        )
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    info_path = home / "gateway.json"
    while True:
        if info_path.exists():
            info = json.loads(info_path.read_text(encoding="utf-8"))
            if info.get("pid") == process.pid:
                break
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"tenantry dev did not start:\n{output.read_text(errors='replace')}")
        time.sleep(0.1)
    return LocalStack(
        url=str(info["url"]),
        home=home,
        admin_key=(home / "admin-key").read_text(encoding="utf-8").strip(),
        endpoint_url=str(info["endpoint_url"]),
        process=process,
        stdout=str(output),
    )


@pytest.fixture(scope="session")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """One local stack shared by the tests that do not stop or reconfigure it."""
    stack = start_stack(tmp_path_factory.mktemp("tenantry-home"))
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def stack_factory(tmp_path: Path) -> Iterator[Callable[..., LocalStack]]:
    """Private stacks for tests that restart, patch plans or edit code; all stopped at the end."""
    started: list[LocalStack] = []

    def start(home: Path | None = None, **options: Any) -> LocalStack:
        stack = start_stack(home or tmp_path / "home", **options)
        started.append(stack)
        return stack

    try:
        yield start
    finally:
        for stack in started:
            stack.stop()
