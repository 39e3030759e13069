"""Nothing the local stack acknowledged is lost when it is killed (SIGKILL, no chance to snapshot)."""

from __future__ import annotations

import signal
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

from local.stack_process import LocalStack

PUBLISHERS = 6
ACKNOWLEDGED_BEFORE_KILL = 150


def _publish_until_killed(
    stack: LocalStack, key: str, acknowledged: dict[int, str], lock: threading.Lock
) -> None:
    """Publish distinct events until the stack stops answering; keep every 201's position."""
    while True:
        marker = uuid.uuid4().hex
        try:
            answer = stack.request(
                "POST", "/events", key=key, body={"type": "order", "data": {"marker": marker}}
            )
        except OSError:
            return  # the stack is gone: this publish was never acknowledged
        if answer.status != 201:
            raise AssertionError(f"publish answered {answer.status}: {answer.raw!r}")
        with lock:
            acknowledged[int(answer.json["position"])] = marker


def _all_events(stack: LocalStack, key: str) -> list[dict[str, object]]:
    events: list[dict[str, object]] = []
    start = 1
    while True:
        page = stack.request("GET", f"/events?from={start}&limit=1000", key=key)
        assert page.status == 200, page.raw
        events += page.json["events"]
        if page.json["next_from"] is None:
            return events
        start = int(page.json["next_from"])


def test_sigkill_during_concurrent_publishes_keeps_every_acknowledged_event(
    stack_factory: Callable[..., LocalStack], tmp_path: Path
) -> None:
    # Given a stack with one tenant and several clients publishing at once
    home = tmp_path / "home"
    stack = stack_factory(home)
    _, key = stack.create_tenant(tier="enterprise")
    acknowledged: dict[int, str] = {}
    lock = threading.Lock()
    publishers = [
        threading.Thread(target=_publish_until_killed, args=(stack, key, acknowledged, lock))
        for _ in range(PUBLISHERS)
    ]
    for publisher in publishers:
        publisher.start()

    # When the stack is killed with SIGKILL while they publish, and started again on the same home
    while True:
        with lock:
            if len(acknowledged) >= ACKNOWLEDGED_BEFORE_KILL:
                break
        threading.Event().wait(0.01)
    stack.process.send_signal(signal.SIGKILL)
    stack.process.wait()
    for publisher in publishers:
        publisher.join(timeout=60)
    restarted = stack_factory(home)

    # Then every acknowledged event is there at its position, with its own data
    events = _all_events(restarted, key)
    stored = {int(str(event["position"])): event for event in events}
    for position, marker in acknowledged.items():
        assert position in stored, f"acknowledged position {position} was lost"
        assert stored[position]["data"] == {"marker": marker}, f"position {position} holds other data"
    # And the stream is gapless, and the next publish continues it
    assert sorted(stored) == list(range(1, len(stored) + 1))
    after = restarted.request("POST", "/events", key=key, body={"type": "order", "data": {"marker": "after"}})
    assert after.status == 201, after.raw
    assert after.json["position"] == len(stored) + 1
