"""Every module-level cache of the layer, registered in one place and cleared together.

A warm Lambda sandbox keeps clients, credentials, plan ids and stream heads between invocations;
that is the point of them. Tests and the local stack switch the AWS backend (moto) or the
environment under a process, and must then forget all of it at once: :func:`clear_all` does,
whatever module added a cache. A module registers its cache's clearing function at import time.

Standard library only: the authorizer imports it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

_clearers: dict[str, Callable[[], None]] = {}
_lock = threading.Lock()


def register(clear: Callable[[], None]) -> Callable[[], None]:
    """Register ``clear`` (usable as a decorator). Keyed by its qualified name, so a module loaded
    again replaces its entry instead of adding a second one."""
    with _lock:
        _clearers[f"{clear.__module__}.{clear.__qualname__}"] = clear
    return clear


def registered() -> tuple[str, ...]:
    with _lock:
        return tuple(_clearers)


def clear_all(prefix: str = "") -> None:
    """Forget every registered cache (a backend or an environment changed under the process), or
    only those whose function's qualified name starts with ``prefix`` (``tenantry.events.``)."""
    with _lock:
        clearers = [clear for name, clear in _clearers.items() if name.startswith(prefix)]
    for clear in clearers:
        clear()
