"""The embedded AWS's change feed: a publish wakes the local stack's waiting subscriptions at once.

On AWS a subscription (``tenantry.subscriptions``) reads HEAD once a second. Here the embedded AWS
sees every write as it lands, so it tells the watchers of that partition, which then read at
once: the feed's protocol is :mod:`tenantry.changes` (the layer's side; this is the server's). A
watcher connects to :attr:`ChangeFeed.address` (``TENANTRY_CHANGE_FEED`` in every process the
stack configures, sandboxes included), sends a JSON line per partition it watches (a tag, a table
name, a partition key value), gets ``+`` for each once it is watched, then its tag each time a
write to one of them succeeded, after the write is durable and before its answer leaves.

A signal is a hint, never data: a watcher that misses one (its buffer full, it was slow to
connect) still finds the write at its next timed read. One thread serves every connection
(``selectors``); signals are sent from the writing request's thread without blocking it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import selectors
import socket
import threading
from collections.abc import Iterable

from tenantry.changes import WATCHING

_log = logging.getLogger("tenantry.local.changefeed")
MAX_LINE_BYTES = 4096


class ChangeFeed:
    """Watchers by (table name, partition key value); :meth:`changed` signals them."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self._listener = socket.create_server((host, 0))
        self._listener.setblocking(False)
        self.address = "{}:{}".format(*self._listener.getsockname()[:2])
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ)
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._selector.register(self._wake_reader, selectors.EVENT_READ)
        self._lock = threading.Lock()
        self._watchers: dict[tuple[str, str], dict[socket.socket, bytes]] = {}
        self._partial: dict[socket.socket, bytes] = {}
        self._stopping = False
        self._thread = threading.Thread(target=self._serve, name="embedded-aws-change-feed", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping = True
        with contextlib.suppress(OSError):
            self._wake_writer.send(b"x")
        self._thread.join(timeout=5)
        for connection in list(self._partial):
            self._drop(connection)
        for sock in (self._listener, self._wake_reader, self._wake_writer):
            sock.close()
        self._selector.close()

    @property
    def watched(self) -> int:
        """How many (partition, watcher) pairs are watched now."""
        with self._lock:
            return sum(len(watchers) for watchers in self._watchers.values())

    def changed(self, partitions: Iterable[tuple[str, str]]) -> None:
        """Signal the watchers of these (table name, partition key value) pairs."""
        with self._lock:
            if not self._watchers:
                return
            for partition in set(partitions):
                for connection, tag in self._watchers.get(partition, {}).items():
                    # A full buffer means a signal is already waiting: this one adds nothing.
                    with contextlib.suppress(BlockingIOError, OSError):
                        connection.send(tag)

    # ------------------------------------------------------------------ the serving thread
    def _serve(self) -> None:
        while not self._stopping:
            for key, _ in self._selector.select():
                sock = key.fileobj
                if sock is self._wake_reader:
                    continue
                if sock is self._listener:
                    self._accept()
                else:
                    assert isinstance(sock, socket.socket)
                    self._read(sock)

    def _accept(self) -> None:
        with contextlib.suppress(BlockingIOError):
            connection, _ = self._listener.accept()
            connection.setblocking(False)
            self._partial[connection] = b""
            self._selector.register(connection, selectors.EVENT_READ)

    def _read(self, connection: socket.socket) -> None:
        try:
            data = connection.recv(MAX_LINE_BYTES)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._drop(connection)  # the watcher is done (its subscription ended)
            return
        buffered = self._partial.get(connection, b"") + data
        *lines, rest = buffered.split(b"\n")
        if len(rest) > MAX_LINE_BYTES:
            self._drop(connection)
            return
        self._partial[connection] = rest
        acknowledged = 0
        for line in lines:
            try:
                request = json.loads(line)
                tag = str(request["tag"]).encode()
                partition = (str(request["table"]), str(request["key"]))
            except (ValueError, KeyError, TypeError):
                _log.warning("change feed: unreadable watch request dropped")
                self._drop(connection)
                return
            if len(tag) != 1 or tag == WATCHING:
                self._drop(connection)
                return
            with self._lock:
                self._watchers.setdefault(partition, {})[connection] = tag
            acknowledged += 1
        if acknowledged:
            with contextlib.suppress(OSError):
                connection.sendall(WATCHING * acknowledged)

    def _drop(self, connection: socket.socket) -> None:
        with self._lock:
            for partition in list(self._watchers):
                watchers = self._watchers[partition]
                watchers.pop(connection, None)
                if not watchers:
                    del self._watchers[partition]
        self._partial.pop(connection, None)
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(connection)
        connection.close()
