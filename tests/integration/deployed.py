"""The integration suite against a deployed stage (``make e2e API_URL=… ADMIN_KEY=…``).

:class:`DeployedStage` answers the same calls as :class:`local.stack_process.LocalStack` over HTTPS.
It remembers every tenant the suite onboards (``POST /tenants`` answered 201) and offboards them at
the end, so a run leaves nothing behind and never touches a tenant it did not create. What only the
local stack has (its embedded AWS, its home folder, the overlay's test functions, its docs routes)
makes the asking test skip, saying why.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, Unpack

import pytest

from local.stack_process import Answer, RequestOptions, http_request, onboard

# Routes only the local stack serves: the overlay's test functions and the API docs.
LOCAL_ONLY_PATHS = ("/_test/", "/docs", "/openapi.json")
# A new API Gateway key can take a few seconds to be accepted by its usage plan.
KEY_READY_SECONDS = 60


@dataclass
class DeployedStage:
    url: str  # the stage's base URL, e.g. https://abc.execute-api.eu-west-1.amazonaws.com/v1
    admin_key: str
    created: list[str] = field(default_factory=list)
    _fresh: set[str] = field(default_factory=set, repr=False)  # keys this run was just given
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def request(self, method: str, path: str, **options: Unpack[RequestOptions]) -> Answer:
        key = options.get("key")
        if path.startswith(LOCAL_ONLY_PATHS):
            pytest.skip(f"{path} is served by the local stack only (overlay test functions, docs)")
        deadline = time.monotonic() + KEY_READY_SECONDS
        while True:
            answer = http_request(self.url, method, path, **options)
            # A key API Gateway does not know yet is refused with its plain 403 "Forbidden" (not the
            # authorizer's explicit deny): a new key needs a few seconds to reach its usage plan.
            fresh = key is not None and key in self._fresh and time.monotonic() < deadline
            if not (fresh and answer.status == 403 and (answer.json or {}).get("message") == "Forbidden"):
                break
            time.sleep(1)
        if method == "POST" and path.startswith("/tenants") and answer.status == 201:
            with self._lock:
                if path == "/tenants":
                    self.created.append(str(answer.json["tenant"]["tenant_id"]))
                self._fresh.add(str(answer.json["api_key"]))
        return answer

    def create_tenant(self, tier: str = "basic", tenant_id: str | None = None) -> tuple[str, str]:
        return onboard(self.request, self.admin_key, tier, tenant_id)

    def offboard_created(self) -> list[str]:
        """Offboard every tenant this run created; the ids that failed."""
        failed = []
        for tenant_id in self.created:
            if self.request("DELETE", f"/tenants/{tenant_id}", key=self.admin_key).status != 200:
                failed.append(tenant_id)
        return failed

    # ------------------------------------------------------------------ what only the local stack has
    @staticmethod
    def _local_only(what: str) -> NoReturn:
        pytest.skip(f"needs the local stack's {what}, which a deployed stage does not expose")

    def aws_client(self, service: str) -> Any:
        self._local_only(f"embedded AWS ({service})")

    @property
    def home(self) -> Path:
        self._local_only("home folder (access log, admin-key file, sam env)")

    @property
    def endpoint_url(self) -> str:
        self._local_only("embedded AWS endpoint")

    @property
    def port(self) -> int:
        self._local_only("raw socket (malformed HTTP)")

    @property
    def stdout(self) -> str:
        self._local_only("process output")

    def stop(self) -> int:
        self._local_only("process")
