"""The local stack for integration tests: ``tenantry dev`` in a subprocess, on a free port.

Each stack has its own ``TENANTRY_HOME`` under pytest's tmp folder, the overlay's extra functions
(an echo and a crashing handler) and a short authorizer TTL, and is stopped at the end.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from local.stack_process import LocalStack, start_stack
from local.template import REPO_ROOT

OVERLAY = Path(__file__).resolve().parent / "overlay.yaml"
# Short enough for a test to outlive it; the template's 300 s stays the default elsewhere.
TEST_AUTHORIZER_TTL = 2

__all__ = ["OVERLAY", "REPO_ROOT", "TEST_AUTHORIZER_TTL", "LocalStack"]


def start_test_stack(home: Path, **options: Any) -> LocalStack:
    options.setdefault("overlay", OVERLAY)
    options.setdefault("authorizer_ttl", TEST_AUTHORIZER_TTL)
    return start_stack(home, **options)


@pytest.fixture(scope="session")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """One local stack shared by the tests that do not stop or reconfigure it."""
    stack = start_test_stack(tmp_path_factory.mktemp("tenantry-home"))
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def stack_factory(tmp_path: Path) -> Iterator[Callable[..., LocalStack]]:
    """Private stacks for tests that restart, patch plans or edit code; all stopped at the end."""
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


def gateway_error(answer: Any, message: str | None, error: str) -> dict[str, Any]:
    """API Gateway's own answer as template.yaml's GatewayResponses shape it: its message text,
    a stable error code, and the request id it also sends as x-amzn-RequestId."""
    return {"message": message, "error": error, "request_id": answer.headers["x-amzn-requestid"]}
