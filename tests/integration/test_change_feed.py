"""The embedded AWS's change feed (local/changefeed.py) as the layer watches it (tenantry.changes):
a successful write to a watched partition signals its watcher at once; another partition's, a
refused write or a read does not; a feed that is not there means the timer."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from local import template
from local.embedded import EmbeddedAws
from tenantry import aws, caches, changes, events
from tenantry.models.events import EventIn
from tenantry.stores import events as store

QUIET_SECONDS = 0.3  # long enough for a signal on loopback to have arrived, were one sent


@pytest.fixture
def watching(embedded: EmbeddedAws) -> Iterator[changes.Changes]:
    assert embedded.change_feed is not None
    signals = changes.watch(
        {
            "e": (template.local_table_name("EventsTable"), "acme"),
            "t": (template.local_table_name("TenantsTable"), "acme"),
        }
    )
    assert isinstance(signals, changes.FeedSignals)
    try:
        yield signals
    finally:
        signals.close()


def test_a_publish_to_the_watched_stream_signals_its_watcher(watching: changes.Changes) -> None:
    events.append("acme", [EventIn(type="t", data={})], batch=False)
    # The first publish opens the stream, then appends: two writes, one tag or two
    assert watching.wait(5) == {"e"}
    while watching.wait(QUIET_SECONDS):
        pass
    events.append("acme", [EventIn(type="t", data={})], batch=False)
    assert watching.wait(5) == {"e"}


def test_the_tenants_record_signals_its_own_tag(watching: changes.Changes) -> None:
    table = aws.dynamodb().Table(template.local_table_name("TenantsTable"))
    table.put_item(Item={"tenant_id": "acme", "status": "suspended"})
    assert watching.wait(5) == {"t"}


def test_another_partition_a_refused_write_and_reads_signal_nothing(
    watching: changes.Changes, embedded: EmbeddedAws
) -> None:
    # Another tenant's publishes
    events.append("globex", [EventIn(type="t", data={})], batch=False)
    # A conditional append on acme's stream that fails (no HEAD: refused, nothing written)
    with pytest.raises(store.HeadMissingError):
        store.DYNAMODB.append("acme", 0, [store.StoredEvent("t", "{}", "t", "t")], "t")
    # Reads of acme's stream
    store.DYNAMODB.read_head("acme")
    store.DYNAMODB.read_events("acme", 1, 10, None)
    assert watching.wait(QUIET_SECONDS) == frozenset()


def test_a_watcher_that_left_is_forgotten(embedded: EmbeddedAws) -> None:
    assert embedded.change_feed is not None
    signals = changes.watch({"e": (template.local_table_name("EventsTable"), "acme")})
    assert embedded.change_feed.watched == 1
    signals.close()
    deadline = time.monotonic() + 5
    while embedded.change_feed.watched and time.monotonic() < deadline:
        time.sleep(0.01)
    assert embedded.change_feed.watched == 0


def test_no_feed_or_one_that_does_not_answer_means_the_timer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(changes.FEED_ENV, raising=False)
    assert isinstance(changes.watch({"e": ("t", "k")}), changes.Timer)
    monkeypatch.setenv(changes.FEED_ENV, "127.0.0.1:1")  # nothing listens on port 1
    assert isinstance(changes.watch({"e": ("t", "k")}), changes.Timer)
    started = time.monotonic()
    assert changes.Timer().wait(0.05) == frozenset()
    assert time.monotonic() - started >= 0.05


def test_a_stack_without_the_feed_tells_no_process_of_one() -> None:
    server = EmbeddedAws(change_feed=False)
    server.start()
    try:
        assert server.change_feed is None
        assert changes.FEED_ENV not in server.client_env()
    finally:
        server.stop()
        caches.clear_all()
