"""``tenantry dev`` in a subprocess on a free port: what integration tests and benchmarks run against.

The stack runs in its own process, as ``make dev`` does, so nothing of the caller's process (an
in-process moto, for instance) can intercept its calls. It is stopped with SIGTERM, the way Ctrl-C
stops ``make dev``.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict, Unpack
from urllib.parse import urlsplit

from local.embedded import client_for, resource_for
from local.template import REPO_ROOT

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


class RequestOptions(TypedDict, total=False):
    """What a test may add to a request: the API key, a JSON body (or raw bytes), headers."""

    key: str | None
    body: Any
    raw: bytes | None
    headers: dict[str, str] | None


def http_request(base_url: str, method: str, path: str, **options: Unpack[RequestOptions]) -> Answer:
    """One request to ``base_url`` + ``path`` (http or https; the base may end in a stage path)."""
    key, body, raw, headers = (
        options.get("key"),
        options.get("body"),
        options.get("raw"),
        options.get("headers"),
    )
    parts = urlsplit(base_url)
    connection_type = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    connection = connection_type(parts.hostname or "127.0.0.1", parts.port, timeout=60)
    try:
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        if key is not None:
            all_headers["X-API-Key"] = key
        payload = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        connection.request(method, parts.path.rstrip("/") + path, body=payload, headers=all_headers)
        response = connection.getresponse()
        data = response.read()
        header_list = [(name, value) for name, value in response.getheaders()]
        return Answer(response.status, {n.lower(): v for n, v in header_list}, data, header_list)
    finally:
        connection.close()


def onboard(
    request: Callable[..., Answer], admin_key: str, tier: str, tenant_id: str | None
) -> tuple[str, str]:
    """POST /tenants through ``request``: (tenant id, its API key)."""
    body: dict[str, Any] = {"name": f"Tenant {tier}", "tier": tier}
    if tenant_id is not None:
        body["tenant_id"] = tenant_id
    answer = request("POST", "/tenants", key=admin_key, body=body)
    assert answer.status == 201, answer.raw
    return str(answer.json["tenant"]["tenant_id"]), str(answer.json["api_key"])


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

    def request(self, method: str, path: str, **options: Unpack[RequestOptions]) -> Answer:
        return http_request(self.url, method, path, **options)

    def create_tenant(self, tier: str = "basic", tenant_id: str | None = None) -> tuple[str, str]:
        return onboard(self.request, self.admin_key, tier, tenant_id)

    def aws_client(self, service: str) -> Any:
        """A boto3 client on the stack's embedded AWS."""
        return client_for(service, self.endpoint_url)

    def aws_resource(self, service: str) -> Any:
        """A boto3 resource on the stack's embedded AWS."""
        return resource_for(service, self.endpoint_url)

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
    overlay: Path | None = None,
    authorizer_ttl: int | None = None,
    extra_args: list[str] | None = None,
    reload: bool = False,
    source: Path | None = None,
) -> LocalStack:
    """Start ``tenantry dev`` on a free port. ``source``: another checkout of this repository to
    run instead of this one (the benchmark's baseline), on this venv's libraries."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "gateway.json").unlink(missing_ok=True)
    command = [
        sys.executable,
        "-m",
        "tenantry_cli",
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
    if source is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(source), str(source / "layers" / "core")])
    output = home / "dev.out"
    with output.open("ab") as sink:
        process = subprocess.Popen(  # noqa: S603 - our own CLI
            command, cwd=source or REPO_ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT
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
