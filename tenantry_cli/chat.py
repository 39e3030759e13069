"""``tenantry chat``: one streamed chat turn, printed to the terminal as the model writes it.

It calls ``POST /chat`` with ``"stream": true`` at ``--url`` (``TENANTRY_URL``, default the local
stack) with a tenant key (``--key`` or ``TENANTRY_KEY``), prints each ``delta`` as it arrives on
stdout, then the session id and the tokens on stderr, so ``--session`` continues the conversation.
Exit codes: 0 the turn was stored, 1 the API refused it or the stream ended with an ``error``
event (its message on stderr), 2 usage or connection problem.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
from collections.abc import Iterator
from typing import Any, TextIO
from urllib.parse import urlsplit

DEFAULT_URL = "http://127.0.0.1:3000"


def server_sent_events(response: http.client.HTTPResponse) -> Iterator[tuple[str, Any]]:
    """(event, data) as each event's blank line arrives; comments (keep-alives) are skipped."""
    name, data = "message", ""
    while True:
        line = response.readline()
        if not line:
            return
        text = line.decode("utf-8").rstrip("\r\n")
        if not text:
            if data:
                yield name, json.loads(data)
            name, data = "message", ""
        elif text.startswith(":"):
            continue
        elif text.startswith("event:"):
            name = text[len("event:") :].strip()
        elif text.startswith("data:"):
            data += text[len("data:") :].strip()


def stream_turn(
    url: str, key: str, user: str, message: str, *, session_id: str | None, out: TextIO, err: TextIO
) -> int:
    parts = urlsplit(url)
    connection_type = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    connection = connection_type(parts.hostname or "127.0.0.1", parts.port, timeout=960)
    body: dict[str, Any] = {"message": message, "stream": True}
    if session_id:
        body["session_id"] = session_id
    headers = {"Content-Type": "application/json", "X-API-Key": key, "X-User-ID": user}
    try:
        connection.request("POST", parts.path.rstrip("/") + "/chat", body=json.dumps(body), headers=headers)
        response = connection.getresponse()
    except OSError as exc:
        print(f"tenantry chat: cannot reach {url}: {exc}", file=err)
        return 2
    try:
        if response.status != 200 or "text/event-stream" not in (response.getheader("Content-Type") or ""):
            payload = response.read().decode(errors="replace")
            try:
                detail = json.loads(payload).get("message", payload)
            except ValueError:
                detail = payload
            print(f"tenantry chat: {response.status}: {detail}", file=err)
            return 1
        for name, data in server_sent_events(response):
            if name == "delta":
                out.write(data["text"])
                out.flush()
            elif name == "done":
                out.write("\n")
                tokens = data["tokens"]
                print(
                    f"session {data['session_id']} · {data['model']} · {tokens['input']} tokens in,"
                    f" {tokens['output']} out · {data['stop_reason']}",
                    file=err,
                )
                return 0
            elif name == "error":
                out.write("\n")
                print(f"tenantry chat: {data['error']}: {data['message']}", file=err)
                return 1
        print("\ntenantry chat: the stream ended before its last event", file=err)
        return 1
    finally:
        connection.close()


def _chat(args: argparse.Namespace) -> int:
    key = args.key or os.environ.get("TENANTRY_KEY", "")
    if not key:
        print("tenantry chat: no tenant key: pass --key or set TENANTRY_KEY", file=sys.stderr)
        return 2
    return stream_turn(
        args.url, key, args.user, args.message, session_id=args.session, out=sys.stdout, err=sys.stderr
    )


def register(subcommands: Any) -> None:
    chat = subcommands.add_parser("chat", help="Send one chat message and print the reply as it streams")
    chat.add_argument("message")
    chat.add_argument("--session", help="continue this session (its id is printed after each turn)")
    chat.add_argument(
        "--user", default=os.environ.get("TENANTRY_USER", "cli"), help="the X-User-ID to chat as"
    )
    chat.add_argument("--key", help="a tenant key (default: $TENANTRY_KEY)")
    chat.add_argument("--url", default=os.environ.get("TENANTRY_URL", DEFAULT_URL), help="API base URL")
    chat.set_defaults(handler=_chat)
