"""The embedded AWS's write-ahead journal: nothing it acknowledged is lost when the process dies.

The snapshot (``aws-state.json``) alone lost every write since the last save on a crash, and a
client holding an acknowledged event position then saw that position reused for other data. So
each state-changing request also appends one record, and the answer waits until that record is
on disk (``fdatasync``):

- **What a record holds.** The *result* of the request, not the request: for DynamoDB the
  post-image (or absence) of every item the request touched, read from moto under the request
  lock; for API Gateway the whole key set (ids, values, plans). Replaying results is
  deterministic, where replaying requests is not (moto draws fresh random ids for new API keys,
  and the ApiKeys table refers to those ids).
- **Group commit.** Records are appended under the request lock, in the order the writes
  happened; the fsync runs outside it, and one fsync covers every record appended so far, so
  concurrent writers share it. A reader also waits until what it saw is durable, so no answer
  ever shows data a crash could take back.
- **Segments and compaction.** Records go to ``journal-<first seq>.log``. A snapshot is taken
  under the request lock together with the sequence number it covers, and starts a new segment;
  once the snapshot file is durable the older segments are deleted. On start, the snapshot is
  loaded and the records after its sequence number are applied over it.
- **Torn tails.** A crash can cut the last line short. That record was never acknowledged (its
  fsync did not return), so a line without its newline, or one that does not parse, ends the
  replay.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

_log = logging.getLogger("tenantry.local.journal")

SEGMENT_PREFIX = "journal-"
SEGMENT_SUFFIX = ".log"

# DynamoDB operations whose effect a record can name item by item.
ITEM_WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"})

KeyOf = Callable[[str, dict[str, Any]], dict[str, Any] | None]


def fsync_directory(path: Path) -> None:
    """Make a rename or a new file in ``path`` durable (its directory entry is data too)."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


class Journal:
    """Append-only, fsync'd, segmented; appends run under the caller's lock, syncs outside it."""

    def __init__(self, folder: Path, last_seq: int) -> None:
        self.folder = folder
        self._appended = last_seq
        self._durable = last_seq
        self._state = threading.Condition()
        self._syncing = False
        self._descriptor = -1
        self.size = 0  # bytes in the current segment: the snapshotter compacts a large journal
        self._segment = self._open_segment(last_seq + 1)

    # ------------------------------------------------------------------ writing
    @property
    def last_seq(self) -> int:
        return self._appended

    def append(self, record: dict[str, Any]) -> int:
        """Write one record (not yet durable); its sequence number. Callers serialize appends."""
        seq = self._appended + 1
        line = json.dumps({"seq": seq, **record}, separators=(",", ":")) + "\n"
        data = line.encode("utf-8")
        written = 0
        while written < len(data):
            written += os.write(self._descriptor, data[written:])
        self.size += written
        self._appended = seq
        return seq

    def wait_durable(self, seq: int) -> None:
        """Return once every record up to ``seq`` is on disk; one fsync serves many waiters."""
        with self._state:
            while self._durable < seq:
                if self._syncing:
                    self._state.wait()
                    continue
                self._syncing = True
                target, descriptor = self._appended, self._descriptor
                self._state.release()
                try:
                    os.fdatasync(descriptor)
                finally:
                    self._state.acquire()
                    self._syncing = False
                    self._durable = max(self._durable, target)
                    self._state.notify_all()

    def rotate(self) -> int:
        """Start a new segment (caller holds the request lock); the last seq of the older ones."""
        with self._state:
            while self._syncing:
                self._state.wait()
            os.fdatasync(self._descriptor)
            self._durable = self._appended
            os.close(self._descriptor)
            self._segment = self._open_segment(self._appended + 1)
            self._state.notify_all()
            return self._appended

    def discard_before_current(self) -> None:
        """Delete the segments a durable snapshot now covers (all but the one being written)."""
        for path in segments(self.folder):
            if path != self._segment:
                path.unlink(missing_ok=True)

    def close(self) -> None:
        with self._state:
            if self._descriptor >= 0:
                os.fdatasync(self._descriptor)
                os.close(self._descriptor)
                self._descriptor = -1
                self._durable = self._appended

    def _open_segment(self, first_seq: int) -> Path:
        path = self.folder / f"{SEGMENT_PREFIX}{first_seq:012d}{SEGMENT_SUFFIX}"
        # A segment of this name can only hold records the replay could not read (a torn tail):
        # its first seq is past everything restored. Appending after a torn line would bury it.
        self._descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o600)
        self.size = 0
        fsync_directory(self.folder)
        return path


# ---------------------------------------------------------------------- reading and replay
def segments(folder: Path) -> list[Path]:
    return sorted(folder.glob(f"{SEGMENT_PREFIX}*{SEGMENT_SUFFIX}"))


def read_records(folder: Path, after_seq: int) -> Iterator[dict[str, Any]]:
    """Every intact record with seq > ``after_seq``, in seq order; a segment ends at a torn line."""
    last = after_seq
    for path in segments(folder):
        with path.open("rb") as lines:
            for raw in lines:
                try:
                    record = json.loads(raw) if raw.endswith(b"\n") else None
                    seq = int(record["seq"]) if isinstance(record, dict) else -1
                except (ValueError, KeyError, TypeError):
                    seq = -1
                if seq < 0:
                    _log.warning("%s ends in a torn record (never acknowledged); ignored", path.name)
                    break
                if seq > last and isinstance(record, dict):
                    last = seq
                    yield record


def touched_items(operation: str, request: dict[str, Any], key_of: KeyOf) -> list[tuple[str, dict[str, Any]]]:
    """(table, key) of every item a successful write ``operation`` with body ``request`` changed."""
    touched: list[tuple[str, dict[str, Any] | None]] = []
    if operation == "PutItem":
        touched.append((request["TableName"], key_of(request["TableName"], request["Item"])))
    elif operation in ("UpdateItem", "DeleteItem"):
        touched.append((request["TableName"], key_of(request["TableName"], request["Key"])))
    elif operation == "BatchWriteItem":
        for table_name, writes in request["RequestItems"].items():
            for write in writes:
                source = write.get("PutRequest", {}).get("Item") or write.get("DeleteRequest", {}).get("Key")
                touched.append((table_name, key_of(table_name, source or {})))
    elif operation == "TransactWriteItems":
        for entry in request["TransactItems"]:
            for kind, write in entry.items():
                if kind == "ConditionCheck":
                    continue
                source = write.get("Item") if kind == "Put" else write.get("Key")
                touched.append((write["TableName"], key_of(write["TableName"], source or {})))
    return [(table, key) for table, key in touched if key is not None]


def item_identity(key: dict[str, Any]) -> str:
    return json.dumps(key, sort_keys=True, separators=(",", ":"))


def apply(
    state: dict[str, Any], records: Iterator[dict[str, Any]], key_of: KeyOf
) -> tuple[dict[str, Any], int]:
    """The snapshot ``state`` with ``records`` applied in order, and how many were applied."""
    tables: dict[str, dict[str, dict[str, Any]]] = {}
    for table_name, items in state.get("dynamodb", {}).items():
        indexed: dict[str, dict[str, Any]] = {}
        for item in items:
            key = key_of(table_name, item)
            # A table the template no longer has keeps its items as they are (the restore drops them).
            indexed[item_identity(key) if key is not None else str(len(indexed))] = item
        tables[table_name] = indexed
    applied = 0
    last_seq = int(state.get("journal_seq", 0))
    for record in records:
        applied += 1
        last_seq = int(record["seq"])
        for change in record.get("items", []):
            table = tables.setdefault(change["table"], {})
            identity = item_identity(change["key"])
            if change.get("item") is None:
                table.pop(identity, None)
            else:
                table[identity] = change["item"]
        if "api_keys" in record:
            state["api_keys"] = record["api_keys"]
        if "usage_plans" in record:
            state["usage_plans"] = record["usage_plans"]
        if "sqs" in record:
            state["sqs"] = record["sqs"]
    state["dynamodb"] = {name: list(items.values()) for name, items in tables.items()}
    state["journal_seq"] = last_seq
    return state, applied
