"""What a subscription waits on between its reads of DynamoDB: a timer, or a change feed.

On AWS nothing tells a running function that an item changed (DynamoDB Streams deliver to a new
invocation, not to this one), so a subscription (tenantry.subscriptions) polls: it waits a bounded
time, then reads. A local stack knows each write as it lands and may offer a **change feed**: a
loopback TCP address in ``TENANTRY_CHANGE_FEED`` (``host:port``). A watcher connects, sends one
JSON line per partition it watches (``{"tag": "e", "table": "<table name>", "key": "<partition
key value>"}``), which the feed acknowledges with a ``+`` each once it watches, and from then on
receives its one-byte tag each time a write to one of them succeeded. A signal only says "read
again": the subscription still reads DynamoDB, so a lost, late or extra signal costs a read,
never an event, and the timed reads go on beside it.

The layer speaks only this protocol, never the local stack's code; a feed that cannot be reached
(the variable unset, as on AWS, or a container that cannot reach the host) means the timer.
Standard library only.
"""

from __future__ import annotations

import json
import os
import select
import socket
import time
from collections.abc import Mapping
from typing import Final, Protocol

FEED_ENV: Final = "TENANTRY_CHANGE_FEED"
CONNECT_TIMEOUT_SECONDS: Final = 0.5
WATCHING: Final = b"+"  # the feed's acknowledgement of one watched partition


class Changes(Protocol):
    """Signals of changes to the partitions a subscription watches."""

    def wait(self, seconds: float) -> frozenset[str]:
        """Block for up to ``seconds``; the tags of the watched partitions that changed meanwhile
        (empty: none signalled, or nothing can signal)."""
        ...

    def close(self) -> None: ...


class Timer:
    """No signals at all (AWS): waiting is sleeping, and the caller's timed reads find changes."""

    def wait(self, seconds: float) -> frozenset[str]:
        if seconds > 0:
            time.sleep(seconds)
        return frozenset()

    def close(self) -> None:
        pass


class FeedSignals:
    """The signals of a change feed's connection; the timer once the feed is gone."""

    def __init__(self, connection: socket.socket, pending: bytes = b"") -> None:
        self._connection: socket.socket | None = connection
        self._pending = pending

    def wait(self, seconds: float) -> frozenset[str]:
        if self._pending:
            pending, self._pending = self._pending, b""
            return frozenset(chr(tag) for tag in pending)
        connection = self._connection
        if connection is None:
            return Timer().wait(seconds)
        readable, _, _ = select.select([connection], [], [], max(0.0, seconds))
        if not readable:
            return frozenset()
        try:
            data = connection.recv(4096)
        except OSError:
            data = b""
        if not data:
            # The feed stopped (the local stack restarting): polling goes on without it.
            self.close()
            return frozenset()
        return frozenset(chr(tag) for tag in data.replace(WATCHING, b""))

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def watch(partitions: Mapping[str, tuple[str, str]]) -> Changes:
    """Signals for ``partitions`` (tag → (table name, partition key value)): the feed's when
    ``TENANTRY_CHANGE_FEED`` names one that answers, else the timer. Call it before the first
    read, so that no write after that read goes unsignalled."""
    address = os.environ.get(FEED_ENV, "").strip()
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        return Timer()
    lines = b"".join(
        json.dumps({"tag": tag, "table": table, "key": key}).encode() + b"\n"
        for tag, (table, key) in partitions.items()
    )
    try:
        connection = socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_SECONDS)
    except OSError:
        return Timer()
    try:
        connection.sendall(lines)
        # Watched before the caller's first read: a write after that read is signalled.
        acknowledged = b""
        while acknowledged.count(WATCHING) < len(partitions):
            received = connection.recv(64)
            if not received:
                raise ConnectionError("the change feed closed the connection")
            acknowledged += received
    except OSError:
        connection.close()
        return Timer()
    connection.setblocking(False)
    return FeedSignals(connection, acknowledged.replace(WATCHING, b""))
