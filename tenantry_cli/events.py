"""``tenantry events tail``: a tenant's event stream in the terminal, as events are stored.

It subscribes to ``GET /events/stream`` at ``--url`` (``TENANTRY_URL``, default the local stack)
with a tenant key (``--key`` or ``TENANTRY_KEY``): admin keys do not reach a tenant's data, by
design, so the tenant (or whoever holds its key) tails its own stream. It prints each event on a
line as it arrives (``--json``: the event as JSON, for ``jq``), and when the server closes the
stream (its ``end`` event, at the latest after 15 minutes) or the connection drops, subscribes again
with ``Last-Event-ID``, so nothing is skipped or printed twice. A ``429`` waits for its
``Retry-After``. Exit codes: 0 after ``--count`` events or Ctrl-C, 1 when the API refuses the
subscription or ends it with an ``error`` event (a suspended or offboarded tenant), 2 usage or
connection problem.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
import time
from dataclasses import dataclass
from typing import Any, TextIO
from urllib.parse import urlencode, urlsplit

from tenantry_cli.chat import DEFAULT_URL, server_sent_events

# How long to wait before subscribing again after the connection dropped without an `end`.
RECONNECT_SECONDS = 1.0
# The server closes a subscription within 15 minutes and sends a comment at least every 15 s.
READ_TIMEOUT_SECONDS = 60.0


@dataclass
class Tail:
    """Where the tail stands: the last position received, and how many events it printed."""

    url: str
    key: str
    event_type: str | None
    out: TextIO
    err: TextIO
    as_json: bool = False
    count: int | None = None
    max_seconds: int | None = None
    last_position: int | None = None
    printed: int = 0

    def run(self, start: int | None, consumer: str | None) -> int:
        first = True
        while True:
            query: dict[str, Any] = {}
            if first and start is not None:
                query["from"] = start
            if first and consumer is not None:
                query["consumer"] = consumer
            if self.event_type:
                query["type"] = self.event_type
            if self.max_seconds:
                query["max_seconds"] = self.max_seconds
            if self.count is not None:
                query["limit"] = self.count - self.printed
            outcome = self._subscribe(query)
            first = False
            if outcome is not None:
                return outcome
            if self.count is not None and self.printed >= self.count:
                return 0

    def _subscribe(self, query: dict[str, Any]) -> int | None:
        """One subscription; an exit code to stop with, or None to subscribe again."""
        parts = urlsplit(self.url)
        connection_type = (
            http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        )
        connection = connection_type(parts.hostname or "127.0.0.1", parts.port, timeout=READ_TIMEOUT_SECONDS)
        headers = {"X-API-Key": self.key, "Accept": "text/event-stream"}
        if self.last_position is not None:
            headers["Last-Event-ID"] = str(self.last_position)
        path = parts.path.rstrip("/") + "/events/stream" + (f"?{urlencode(query)}" if query else "")
        try:
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
        except OSError as exc:
            print(f"tenantry events tail: cannot reach {self.url}: {exc}", file=self.err)
            return 2
        try:
            if response.status == 429:
                wait = float(response.getheader("Retry-After") or RECONNECT_SECONDS)
                print(f"tenantry events tail: throttled; subscribing again in {wait:g} s", file=self.err)
                response.read()
                time.sleep(wait)
                return None
            if response.status != 200 or "text/event-stream" not in (
                response.getheader("Content-Type") or ""
            ):
                return self._refused(response)
            for name, data in server_sent_events(response):
                if name == "event":
                    self._print(data)
                    self.last_position = int(data["position"])
                elif name == "end":
                    self.last_position = int(data["next_from"]) - 1
                    return None
                elif name == "error":
                    print(f"tenantry events tail: {data['error']}: {data['message']}", file=self.err)
                    return 1
        except (OSError, http.client.HTTPException, ValueError):
            pass  # the connection dropped mid-stream: resume after what was printed
        finally:
            connection.close()
        time.sleep(RECONNECT_SECONDS)
        return None

    def _refused(self, response: http.client.HTTPResponse) -> int:
        payload = response.read().decode(errors="replace")
        try:
            detail = json.loads(payload).get("message", payload)
        except ValueError:
            detail = payload
        print(f"tenantry events tail: {response.status}: {detail}", file=self.err)
        return 1

    def _print(self, event: dict[str, Any]) -> None:
        if self.as_json:
            self.out.write(json.dumps(event, separators=(",", ":"), ensure_ascii=False) + "\n")
        else:
            data = json.dumps(event["data"], separators=(",", ":"), ensure_ascii=False)
            self.out.write(f"{event['position']:>8}  {event['recorded_at']}  {event['type']}  {data}\n")
        self.out.flush()
        self.printed += 1


def _tail(args: argparse.Namespace) -> int:
    key = args.key or os.environ.get("TENANTRY_KEY", "")
    if not key:
        print("tenantry events tail: no tenant key: pass --key or set TENANTRY_KEY", file=sys.stderr)
        return 2
    tail = Tail(
        args.url,
        key,
        args.type,
        sys.stdout,
        sys.stderr,
        as_json=args.json,
        count=args.count,
        max_seconds=args.max_seconds,
    )
    try:
        return tail.run(args.start, args.consumer)
    except KeyboardInterrupt:
        return 0


def register(subcommands: Any) -> None:
    events = subcommands.add_parser("events", help="Follow a tenant's event stream (with a tenant key)")
    actions = events.add_subparsers(dest="action", required=True)
    tail = actions.add_parser(
        "tail",
        help="Print the tenant's events as they are stored (GET /events/stream), resuming on reconnects",
    )
    where = tail.add_mutually_exclusive_group()
    where.add_argument("--from", dest="start", type=int, help="the first position (default 1)")
    where.add_argument("--consumer", help="start after this consumer's checkpoint")
    tail.add_argument("--type", help="only events of this type")
    tail.add_argument("--count", type=int, help="stop after this many events")
    tail.add_argument("--json", action="store_true", help="print each event as JSON")
    tail.add_argument(
        "--max-seconds", type=int, help="subscribe again after this long (default: the server's maximum)"
    )
    tail.add_argument("--key", help="a tenant key (default: $TENANTRY_KEY)")
    tail.add_argument("--url", default=os.environ.get("TENANTRY_URL", DEFAULT_URL), help="API base URL")
    tail.set_defaults(handler=_tail)
