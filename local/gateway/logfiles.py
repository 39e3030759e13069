"""Each local function's output in its own file: ``$TENANTRY_HOME/logs/<LogicalId>.log``.

On AWS a function's stdout goes to its CloudWatch log group. Locally every function shares one
process, so ``sys.stdout`` is replaced by a router: while a thread runs a function (its cold start
included), what it writes goes to that function's file; anything else goes to the real stdout.
Powertools' logger binds ``sys.stdout`` when a sandbox imports it, which is the router by then.
Writes are gathered per thread up to each newline, so two requests' lines never interleave.
"""

from __future__ import annotations

import contextlib
import io
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO

LOGS_FOLDER = "logs"


class LogFile:
    """One function's log file, appended a whole line at a time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._file: IO[str] | None = None

    def write_lines(self, text: str) -> None:
        with self._lock:
            if self._file is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._file = self.path.open("a", encoding="utf-8", buffering=1)
            self._file.write(text)

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


class _Current(threading.local):
    sink: LogFile | None = None
    pending: str = ""


_current = _Current()


@contextlib.contextmanager
def routed_to(sink: LogFile | None) -> Iterator[None]:
    """Within the block, this thread's stdout goes to ``sink`` (None: leave it as it is)."""
    if sink is None:
        yield
        return
    previous = _current.sink
    _current.sink = sink
    try:
        yield
    finally:
        if _current.pending:
            sink.write_lines(_current.pending + "\n")
            _current.pending = ""
        _current.sink = previous


class _StdoutRouter(io.TextIOBase):
    """``sys.stdout`` that writes to the running function's file, or to the real stdout."""

    def __init__(self, original: IO[str]) -> None:
        self.original = original

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        sink = _current.sink
        if sink is None:
            return self.original.write(text)
        buffered = _current.pending + text
        complete, newline, rest = buffered.rpartition("\n")
        _current.pending = rest
        if newline:
            sink.write_lines(complete + "\n")
        return len(text)

    def flush(self) -> None:
        self.original.flush()


class FunctionLogs:
    """The log files of a home's functions, and the stdout router that fills them."""

    def __init__(self, home: Path) -> None:
        self.folder = home / LOGS_FOLDER
        self._files: dict[str, LogFile] = {}
        self._lock = threading.Lock()
        self._router: _StdoutRouter | None = None

    def file_for(self, logical_id: str) -> LogFile:
        with self._lock:
            if logical_id not in self._files:
                self._files[logical_id] = LogFile(self.folder / f"{logical_id}.log")
            return self._files[logical_id]

    def install(self) -> None:
        if self._router is None and not isinstance(sys.stdout, _StdoutRouter):
            self._router = _StdoutRouter(sys.stdout)
            sys.stdout = self._router

    def uninstall(self) -> None:
        if self._router is not None and sys.stdout is self._router:
            sys.stdout = self._router.original
        self._router = None
        with self._lock:
            for log_file in self._files.values():
                log_file.close()
