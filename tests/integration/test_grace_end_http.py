"""Over HTTP, with API Gateway's 300 s authorizer cache: a key rotated with a short grace works
during it and stops at its end, not when the cached answer expires."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime

import pytest

from local.stack_process import LocalStack

# Long enough for one request to end well inside it, on a loaded machine too.
GRACE_SECONDS = 10

pytestmark = pytest.mark.local_only("runs its own stack with the template's 300 s authorizer cache")


def test_a_rotated_key_stops_at_its_grace_end_despite_the_authorizer_cache(
    stack_factory: Callable[..., LocalStack],
) -> None:
    # Given a stack that caches authorizer answers for 300 s, and a tenant whose key is cached
    stack = stack_factory(authorizer_ttl=300)
    _, old_key = stack.create_tenant("enterprise", "graceful")
    assert stack.request("GET", "/me", key=old_key).status == 200
    # When the key is rotated with a short grace
    started = time.time()
    rotated = stack.request(
        "POST", "/tenants/graceful/keys", key=stack.admin_key, body={"grace_seconds": GRACE_SECONDS}
    )
    assert rotated.status == 201
    grace_end = datetime.fromisoformat(rotated.json["older_keys_expire_at"]).timestamp()
    new_key = rotated.json["api_key"]
    # Then the old key works during the grace
    during = stack.request("GET", "/me", key=old_key).status
    answered = time.time()
    assert answered < grace_end, f"one request took {answered - started:.1f} s: it ended after the grace"
    assert during == 200
    assert grace_end >= int(started) + GRACE_SECONDS
    # And once the grace has ended (waiting for the clock, not for the cache's 300 s)
    time.sleep(max(0.0, grace_end - time.time()) + 1)
    assert stack.request("GET", "/me", key=old_key).status == 401
    late = stack.request("POST", "/events", key=old_key, body={"type": "late", "data": {}})
    assert late.status == 401 and late.json["message"] == "Unauthorized"
    # And the new key works, and sees nothing the old key tried to write
    assert stack.request("GET", "/me", key=new_key).status == 200
    assert stack.request("GET", "/events", key=new_key).json["events"] == []
