"""The stage's access log, locally: the template's format, one JSON line per request, fed to metering.

On AWS, API Gateway renders ``AccessLogSetting.Format`` for every request (throttled ones too) and
a subscription filter hands the lines to the metering function. Locally the gateway renders the
same format with the same ``$context`` variables, appends the line to ``access.log`` and passes it
to the same metering code from a background thread, so stats appear within a second or two.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import re
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

_VARIABLE = re.compile(r"\$context\.([A-Za-z0-9_.]+)")
_log = logging.getLogger("tenantry.local.gateway")

Ingest = Callable[[Iterable[str]], Any]


def render(log_format: str, values: dict[str, str]) -> str:
    """Substitute ``$context.x`` variables; API Gateway writes ``-`` for an empty one."""

    def value_of(match: re.Match[str]) -> str:
        value = values.get(match.group(1), "")
        # The format quotes its variables, so a value must not break out of its JSON string.
        return json.dumps(value)[1:-1] if value != "" else "-"

    return _VARIABLE.sub(value_of, log_format)


class AccessLog:
    """Writes rendered lines to a file and/or a stream, and queues them for metering."""

    def __init__(
        self,
        log_format: str,
        *,
        path: Path | None,
        echo: IO[str] | None,
        ingest: Ingest | None,
        flush_every: float = 0.5,
    ) -> None:
        self._format = log_format
        self._file = path.open("a", encoding="utf-8", buffering=1) if path is not None else None
        self._echo = echo
        self._ingest = ingest
        self._flush_every = flush_every
        self._pending: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._stopping = threading.Event()
        self._write_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.ingested = 0

    def set_ingest(self, ingest: Ingest | None) -> None:
        """Swap the metering entry point (the layer changed and was reloaded)."""
        if ingest is not None:
            self._ingest = ingest

    def start(self) -> None:
        if self._ingest is not None:
            self._thread = threading.Thread(target=self._meter_loop, name="gateway-metering", daemon=True)
            self._thread.start()

    def write(self, values: dict[str, str]) -> str:
        line = render(self._format, values)
        with self._write_lock:
            if self._file is not None:
                self._file.write(line + "\n")
            if self._echo is not None:
                self._echo.write(line + "\n")
                self._echo.flush()
        if self._ingest is not None:
            self._pending.put(line)
        return line

    def drain(self) -> int:
        """Hand every queued line to metering now; the number handed over."""
        lines: list[str] = []
        with contextlib.suppress(queue.Empty):
            while True:
                lines.append(self._pending.get_nowait())
        if lines and self._ingest is not None:
            try:
                self._ingest(lines)
                self.ingested += len(lines)
            except Exception:  # noqa: BLE001 - metering trouble must never take the gateway down
                _log.exception("metering %d access-log lines failed", len(lines))
        return len(lines)

    def _meter_loop(self) -> None:
        while not self._stopping.wait(self._flush_every):
            self.drain()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.drain()
        if self._file is not None:
            self._file.close()
