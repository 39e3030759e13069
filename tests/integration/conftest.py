"""The stack integration tests talk to over HTTP.

By default, a local stack: ``tenantry dev`` in a subprocess, on a free port, with its own
``TENANTRY_HOME`` under pytest's tmp folder, the overlay's extra functions (an echo and a crashing
handler) and a short authorizer TTL, stopped at the end.

With ``TENANTRY_API_URL`` and ``TENANTRY_ADMIN_KEY`` (``make e2e API_URL=… ADMIN_KEY=…``), a
deployed stage instead (:mod:`tests.integration.deployed`): the tests that need the local stack's
internals skip, saying why, and every tenant the run onboarded is offboarded at the end.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from local.embedded import EmbeddedAws
from local.stack_process import Answer, LocalStack, start_stack
from local.template import REPO_ROOT
from tenantry import caches
from tests.contract import Contract, Observed
from tests.integration.deployed import DeployedStage

OVERLAY = Path(__file__).resolve().parent / "overlay.yaml"
# Short enough for a test to outlive it; the template's 300 s stays the default elsewhere.
TEST_AUTHORIZER_TTL = 2
DEPLOYED_URL = os.environ.get("TENANTRY_API_URL", "").strip() or None
INTEGRATION_DIR = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if DEPLOYED_URL is None:
        return
    for item in items:
        if INTEGRATION_DIR not in Path(str(item.path)).parents:
            continue
        marker = item.get_closest_marker("local_only")
        if marker is not None:
            item.add_marker(pytest.mark.skip(reason=f"local stack only: {marker.args[0]}"))
        elif "gateway" not in getattr(item, "fixturenames", ()):
            item.add_marker(
                pytest.mark.skip(reason="tests the local tooling, not the API (make test runs it)")
            )


__all__ = ["OVERLAY", "REPO_ROOT", "TEST_AUTHORIZER_TTL", "LocalStack"]


def start_test_stack(home: Path, **options: Any) -> LocalStack:
    options.setdefault("overlay", OVERLAY)
    options.setdefault("authorizer_ttl", TEST_AUTHORIZER_TTL)
    return start_stack(home, **options)


@pytest.fixture(scope="session", autouse=True)
def contract_conformance() -> Iterator[list[Observed]]:
    """Every answer the suite's HTTP client (``request`` of the local or the deployed stack)
    receives is checked against docs/openapi.json when the session ends: its (route, status) is
    documented and its body validates. A test that provokes an undocumented answer fails the run."""
    observed: list[Observed] = []
    with pytest.MonkeyPatch.context() as patch:
        for stack_class in (LocalStack, DeployedStage):
            patch.setattr(stack_class, "request", _recording(stack_class.request, observed))
        yield observed
    contract = Contract()
    problems = sorted({problem for seen in observed for problem in contract.problems(seen)})
    if problems:
        pytest.fail("answers docs/openapi.json does not document:\n" + "\n".join(problems), pytrace=False)


def _recording(original: Callable[..., Answer], observed: list[Observed]) -> Callable[..., Answer]:
    def request(self: Any, method: str, path: str, **kwargs: Any) -> Answer:
        answer = original(self, method, path, **kwargs)
        content_type = answer.headers.get("content-type", "")
        observed.append(Observed(method, path, answer.status, content_type, answer.raw))
        return answer

    return request


@pytest.fixture(scope="session")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """One stack shared by the tests that do not stop or reconfigure it: local, or the deployed one."""
    if DEPLOYED_URL is not None:
        admin_key = os.environ.get("TENANTRY_ADMIN_KEY", "").strip()
        if not admin_key:
            pytest.exit("TENANTRY_API_URL needs TENANTRY_ADMIN_KEY (make e2e API_URL=... ADMIN_KEY=...)", 2)
        stage = DeployedStage(DEPLOYED_URL, admin_key)
        try:
            yield stage  # type: ignore[misc]
        finally:
            left = stage.offboard_created()
            assert not left, f"could not offboard the run's tenants {left}: offboard them by hand"
        return
    stack = start_test_stack(tmp_path_factory.mktemp("tenantry-home"))
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def stack_factory(tmp_path: Path) -> Iterator[Callable[..., LocalStack]]:
    """Private stacks for tests that restart, patch plans or edit code; all stopped at the end."""
    if DEPLOYED_URL is not None:
        pytest.skip(
            "starts its own local stack (restart, crash, code edits): nothing to do on a deployed stage"
        )
    started: list[LocalStack] = []

    def start(home: Path | None = None, **options: Any) -> LocalStack:
        stack = start_test_stack(home or tmp_path / "home", **options)
        started.append(stack)
        return stack

    try:
        yield start
    finally:
        for stack in started:
            stack.stop()


@pytest.fixture
def embedded(monkeypatch: pytest.MonkeyPatch) -> Iterator[EmbeddedAws]:
    """The embedded AWS in this process, this process's env (clients, table names) pointed at it."""
    server = EmbeddedAws()
    server.start()
    try:
        for variable, value in server.process_env().items():
            monkeypatch.setenv(variable, value)
        caches.clear_all()
        yield server
    finally:
        caches.clear_all()
        server.stop()


def gateway_error(answer: Any, message: str | None, error: str) -> dict[str, Any]:
    """API Gateway's own answer as template.yaml's GatewayResponses shape it: its message text,
    a stable error code, and the request id it also sends as x-amzn-RequestId."""
    return {"message": message, "error": error, "request_id": answer.headers["x-amzn-requestid"]}
