"""Running Lambda functions in process, the way Lambda runs them in sandboxes.

- **Sandboxes.** A sandbox is one loaded copy of a function: its handler module, the function's
  own modules and its own copy of the layer packages (``tenantry``). One sandbox serves one
  invocation at a time, as in Lambda, so module state such as a resolver's ``current_event`` is
  never shared by two concurrent requests. Powertools itself is shared, and keeps the event on a
  class: :func:`router_state_per_thread` makes that state per thread. A pool per function grows
  on demand (a cold start per sandbox) up to a limit and keeps idle sandboxes warm.
- **Environment.** All functions share one process and one ``os.environ``. Variables every
  function agrees on (the table names, for instance) are set in ``os.environ`` once. Each
  invocation, and each sandbox's import, also sees its own function's full env (plus Lambda's
  per-function variables) through a thread-local layer over ``os.environ``, so a variable two
  functions set differently (``POWERTOOLS_SERVICE_NAME``) reads right in each of them.
- **Tenant isolation mode.** A function whose template sets ``TenancyConfig`` to ``PER_TENANT``
  gets a pool per tenant: a tenant's sandboxes serve only that tenant (module state, ``/tmp``-like
  caches), and the context's ``tenant_id`` reports it, as Lambda's tenant isolation mode does.
- **Hot reload.** A watcher polls the modification times under each function's code folder and
  the layers; a change retires the affected pools' sandboxes, and the next request cold-starts a
  fresh copy. In-flight requests finish on the code they started with.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import itertools
import logging
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from local.gateway.api import FunctionSpec
from local.gateway.logfiles import LogFile, routed_to

_log = logging.getLogger("tenantry.local.gateway")
_MISSING = object()


# ---------------------------------------------------------------------- the layered os.environ
class _Overlay(threading.local):
    env: dict[str, str] | None = None


_overlay = _Overlay()
# Variables that belong to one function or another (the template's env): inside a function's
# block, such a variable is visible only if that function has it, as in its own Lambda sandbox.
_scoped_names: frozenset[str] = frozenset()


def _hidden(layer: dict[str, str] | None, key: object) -> bool:
    return layer is not None and key in _scoped_names and key not in layer


class _LayeredEnviron(os._Environ):  # type: ignore[type-arg]
    """``os.environ`` with a per-thread layer on top: reads see the running function's env first."""

    def __getitem__(self, key: str) -> str:
        layer = _overlay.env
        if layer is not None:
            value = layer.get(key, _MISSING)
            if value is not _MISSING:
                return value  # type: ignore[return-value]
            if key in _scoped_names:
                raise KeyError(key)
        result: str = super().__getitem__(key)
        return result

    def get(self, key: str, default: Any = None) -> Any:
        # os.getenv's path, several times per invocation (Powertools' cold-start check, X-Ray's
        # context): Mapping.get would go through __getitem__ and a KeyError for every miss.
        layer = _overlay.env
        if layer is not None:
            value = layer.get(key, _MISSING)
            if value is not _MISSING:
                return value
            if key in _scoped_names:
                return default
        raw = self._data.get(self.encodekey(key), _MISSING)  # type: ignore[attr-defined]
        return default if raw is _MISSING else self.decodevalue(raw)

    def __contains__(self, key: object) -> bool:
        layer = _overlay.env
        if layer is not None and key in layer:
            return True
        return not _hidden(layer, key) and bool(super().__contains__(key))

    def __iter__(self) -> Iterator[str]:
        layer = _overlay.env
        yielded: set[str] = set()
        if layer is not None:
            yield from layer
            yielded.update(layer)
        for key in list(super().__iter__()):
            if key not in yielded and not _hidden(layer, key):
                yield key

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def copy(self) -> dict[str, str]:
        return dict(self)


def install_layered_environ(scoped_names: set[str] | frozenset[str] = frozenset()) -> None:
    """Swap ``os.environ``'s class in place (every existing reference sees the layer)."""
    global _scoped_names  # noqa: PLW0603 - one process-wide view of os.environ
    _scoped_names = frozenset(scoped_names) | _scoped_names
    if not isinstance(os.environ, _LayeredEnviron):
        os.environ.__class__ = _LayeredEnviron


@contextlib.contextmanager
def function_env(env: dict[str, str]) -> Iterator[None]:
    """Within this block, this thread's ``os.environ`` reads see ``env`` first."""
    previous = _overlay.env
    _overlay.env = env
    try:
        yield
    finally:
        _overlay.env = previous


# ---------------------------------------------------------------------- Powertools' router state
class _PerThreadField:
    """A value each thread sees its own of (class-level and instance-level access alike)."""

    def __init__(self, name: str, values: threading.local) -> None:
        self._name = name
        self._values = values

    def __get__(self, instance: Any, owner: Any = None) -> Any:
        try:
            return getattr(self._values, self._name)
        except AttributeError:
            raise AttributeError(self._name) from None

    def __set__(self, instance: Any, value: Any) -> None:
        setattr(self._values, self._name, value)


def router_state_per_thread() -> None:
    """Powertools keeps the event being resolved, and the Lambda context, on its ``BaseRouter``
    *class* (``BaseRouter.current_event = …`` in ``resolve``): on Lambda one process runs one
    invocation at a time. Here every sandbox runs in a thread of one process and shares the
    Powertools package, so two concurrent invocations of different sandboxes read each other's
    event between ``resolve`` and the route (seen: a publish that stored another request's body
    under its own position). Both attributes become per thread, for class and instance access."""
    from aws_lambda_powertools.event_handler import api_gateway  # noqa: PLC0415

    base: Any = api_gateway.BaseRouter
    if getattr(base, "_tenantry_per_thread", False):
        return
    values = threading.local()
    fields = {name: _PerThreadField(name, values) for name in ("current_event", "lambda_context")}
    # Instance access finds these in the class's dict; class-level reads and assignments go
    # through the metaclass below (a class attribute assignment would replace a plain entry).
    for name, per_thread in fields.items():
        setattr(base, name, per_thread)
    metaclass = type(base)
    per_thread_meta = type("PerThreadRouterMeta", (metaclass,), dict(fields))
    base.__class__ = per_thread_meta
    base._tenantry_per_thread = True


# ---------------------------------------------------------------------- Lambda's context object
class LambdaContext:
    """The context object the Python runtime passes to a handler (the same attributes)."""

    __slots__ = (
        "_deadline",
        "aws_request_id",
        "client_context",
        "function_name",
        "function_version",
        "identity",
        "invoked_function_arn",
        "log_group_name",
        "log_stream_name",
        "memory_limit_in_mb",
        "tenant_id",
    )

    def __init__(self, spec: FunctionSpec, request_id: str, log_stream: str) -> None:
        self.function_name = spec.name
        self.function_version = "$LATEST"
        self.invoked_function_arn = spec.arn
        # The real runtime reads this from AWS_LAMBDA_FUNCTION_MEMORY_SIZE: a string.
        self.memory_limit_in_mb = str(spec.memory_mb)
        self.aws_request_id = request_id
        self.log_group_name = f"/aws/lambda/{spec.name}"
        self.log_stream_name = log_stream
        self.identity = None
        self.client_context = None
        self.tenant_id: str | None = None
        self._deadline = time.monotonic() + spec.timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


# ---------------------------------------------------------------------- loading a sandbox
_IMPORT_LOCK = threading.RLock()
_sandbox_numbers = itertools.count(1)


def lambda_env(spec: FunctionSpec, overrides: dict[str, str]) -> dict[str, str]:
    """The full env one function sees: Lambda's own variables, the template's, local overrides."""
    return {
        "AWS_LAMBDA_FUNCTION_NAME": spec.name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_TIMEOUT": str(spec.timeout_s),
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": "$LATEST",
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
        "LAMBDA_TASK_ROOT": str(spec.code_dir),
        "_HANDLER": f"{spec.module_file.stem}.{spec.handler_name}",
        **spec.env,
        **overrides,
    }


def top_level_names(folder: Path) -> set[str]:
    """Importable top-level names in ``folder``: packages and modules."""
    names: set[str] = set()
    with contextlib.suppress(OSError):
        for entry in os.scandir(folder):
            if entry.is_dir() and (Path(entry.path) / "__init__.py").exists():
                names.add(entry.name)
            elif entry.is_file() and entry.name.endswith(".py"):
                names.add(entry.name[:-3])
    return names


@dataclass
class Sandbox:
    spec: FunctionSpec
    handler: Callable[[Any, Any], Any]
    env: dict[str, str]
    generation: int
    log_stream: str
    module: ModuleType


def load_sandbox(spec: FunctionSpec, env: dict[str, str], layer_names: set[str], generation: int) -> Sandbox:
    """Import a fresh copy of ``spec``'s handler module with its own copy of the layer packages.

    The copy's modules are taken out of ``sys.modules`` again afterwards, so the next sandbox
    (or the process itself) imports its own; third-party packages stay shared."""
    own_names = layer_names | top_level_names(spec.code_dir)
    module_name = f"lambda_{spec.logical_id}_{next(_sandbox_numbers)}"

    def is_own(name: str) -> bool:
        return name.partition(".")[0] in own_names

    with _IMPORT_LOCK, function_env(env):
        saved = {name: sys.modules.pop(name) for name in [n for n in sys.modules if is_own(n)]}
        sys.path.insert(0, str(spec.code_dir))
        importlib.invalidate_caches()
        try:
            module_spec = importlib.util.spec_from_file_location(module_name, spec.module_file)
            if module_spec is None or module_spec.loader is None:
                raise ImportError(f"cannot load {spec.module_file}")
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[module_name] = module
            module_spec.loader.exec_module(module)
            handler = getattr(module, spec.handler_name)
        finally:
            with contextlib.suppress(ValueError):
                sys.path.remove(str(spec.code_dir))
            for name in [n for n in sys.modules if is_own(n)]:
                del sys.modules[name]
            sys.modules.pop(module_name, None)
            sys.modules.update(saved)
    log_stream = f"{time.strftime('%Y/%m/%d')}/[$LATEST]{uuid.uuid4().hex}"
    return Sandbox(spec, handler, env, generation, log_stream, module)


def load_isolated_module(
    name: str, env: dict[str, str], layer_names: set[str], extra_path: Path | None = None
) -> ModuleType:
    """Import ``name`` (a layer module such as ``tenantry.metering``) as a private copy."""

    def is_own(module: str) -> bool:
        return module.partition(".")[0] in layer_names

    with _IMPORT_LOCK, function_env(env):
        saved = {module: sys.modules.pop(module) for module in [n for n in sys.modules if is_own(n)]}
        if extra_path is not None:
            sys.path.insert(0, str(extra_path))
        try:
            return importlib.import_module(name)
        finally:
            if extra_path is not None:
                with contextlib.suppress(ValueError):
                    sys.path.remove(str(extra_path))
            for module in [n for n in sys.modules if is_own(n)]:
                del sys.modules[module]
            sys.modules.update(saved)


# ---------------------------------------------------------------------- pools
class TenantIdRequiredError(RuntimeError):
    """Lambda refuses to invoke a tenant-isolated function without a tenant id."""


@dataclass
class InvokePhases:
    """When an invocation passes each point, so the gateway can time it as AWS does: ``admitted``
    when it has a sandbox slot (waiting for one is this pool's limit, not Lambda's, which scales
    out), ``started`` when its handler starts (a cold start is not part of the function's
    Timeout). Both are set, at the latest, when the invocation ends, even by an error."""

    admitted: threading.Event = dataclasses.field(default_factory=threading.Event)
    started: threading.Event = dataclasses.field(default_factory=threading.Event)

    def end(self) -> None:
        self.admitted.set()
        self.started.set()


class FunctionPool:
    """Warm sandboxes of one function; one invocation per sandbox at a time."""

    def __init__(
        self,
        spec: FunctionSpec,
        env: dict[str, str],
        layer_names: set[str],
        max_size: int,
        log: LogFile | None = None,
    ) -> None:
        self.spec = spec
        self.log = log
        self.env = env
        self._layer_names = layer_names
        self._max_size = max_size
        self._idle: list[Sandbox] = []
        self._size = 0
        self._generation = 0
        self._available = threading.Condition(threading.Lock())
        self._tenants: dict[str, FunctionPool] = {}  # tenant isolation mode: a pool per tenant

    def retire(self) -> None:
        """Code changed: drop idle sandboxes; busy ones are dropped when they finish."""
        with self._available:
            self._generation += 1
            self._size -= len(self._idle)
            self._idle.clear()
            self._available.notify_all()
            tenants = list(self._tenants.values())
        for pool in tenants:
            pool.retire()

    def acquire(self, phases: InvokePhases | None = None) -> Sandbox:
        with self._available:
            while True:
                if self._idle:
                    if phases is not None:
                        phases.admitted.set()
                    return self._idle.pop()
                if self._size < self._max_size:
                    self._size += 1
                    generation = self._generation
                    break
                self._available.wait()
        if phases is not None:
            phases.admitted.set()
        try:
            return load_sandbox(self.spec, self.env, self._layer_names, generation)
        except BaseException:
            with self._available:
                self._size -= 1
                self._available.notify()
            raise

    def release(self, sandbox: Sandbox) -> None:
        with self._available:
            if sandbox.generation == self._generation:
                self._idle.append(sandbox)
            else:
                self._size -= 1
            self._available.notify()

    def invoke(
        self,
        event: Any,
        request_id: str,
        tenant_id: str | None = None,
        phases: InvokePhases | None = None,
    ) -> Any:
        """Run the handler with ``event`` in a free sandbox; exceptions propagate. What the function
        writes to stdout, its cold start included, goes to its log file if it has one.

        A function in tenant isolation mode runs in the tenant's own sandboxes (created on its
        first request, never lent to another tenant), and its context reports ``tenant_id``."""
        if self.spec.tenant_isolation:
            if not tenant_id:
                raise TenantIdRequiredError(
                    f"{self.spec.name} is tenant-isolated: an invoke needs a tenant id"
                )
            return self._tenant_pool(tenant_id).invoke(event, request_id, tenant_id, phases)
        with routed_to(self.log):
            sandbox = self.acquire(phases)
            try:
                context = LambdaContext(self.spec, request_id, sandbox.log_stream)
                context.tenant_id = tenant_id
                if phases is not None:
                    phases.started.set()
                with function_env(sandbox.env):
                    return sandbox.handler(event, context)
            finally:
                self.release(sandbox)

    def _tenant_pool(self, tenant_id: str) -> FunctionPool:
        with self._available:
            pool = self._tenants.get(tenant_id)
            if pool is None:
                shared = dataclasses.replace(self.spec, tenant_isolation=False)
                pool = FunctionPool(shared, self.env, self._layer_names, self._max_size, log=self.log)
                self._tenants[tenant_id] = pool
            return pool

    @property
    def warm(self) -> int:
        return len(self._idle) + sum(pool.warm for pool in list(self._tenants.values()))

    def sandbox_modules(self, tenant_id: str | None = None) -> list[ModuleType]:
        """The handler modules of the idle sandboxes (of ``tenant_id``'s, if isolated): for tests."""
        if tenant_id is not None:
            pool = self._tenants.get(tenant_id)
            return [] if pool is None else pool.sandbox_modules()
        return [sandbox.module for sandbox in self._idle]


# ---------------------------------------------------------------------- hot reload
def _tree_signature(folder: Path) -> tuple[int, float]:
    """(file count, newest mtime) of the Python sources and data files under ``folder``."""
    count = 0
    newest = 0.0
    stack = [str(folder)]
    while stack:
        current = stack.pop()
        try:
            entries = list(os.scandir(current))
        except OSError:
            continue
        for entry in entries:
            if entry.name.startswith(".") or entry.name == "__pycache__":
                continue
            if entry.is_dir(follow_symlinks=False):
                stack.append(entry.path)
                continue
            if entry.name.endswith((".pyc", ".pyo")):
                continue
            try:
                stat = entry.stat()
            except OSError:
                continue
            count += 1
            newest = max(newest, stat.st_mtime)
    return count, newest


class Watcher:
    """Polls folders and files; calls ``on_change(path)`` for each that changed."""

    def __init__(self, interval: float = 1.0) -> None:
        self._interval = interval
        self._watched: dict[Path, tuple[int, float]] = {}
        self._callbacks: dict[Path, Callable[[Path], None]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def watch(self, path: Path, on_change: Callable[[Path], None]) -> None:
        with self._lock:
            self._watched[path] = self._signature(path)
            self._callbacks[path] = on_change

    def clear(self) -> None:
        with self._lock:
            self._watched.clear()
            self._callbacks.clear()

    @staticmethod
    def _signature(path: Path) -> tuple[int, float]:
        if path.is_dir():
            return _tree_signature(path)
        try:
            return 1, path.stat().st_mtime
        except OSError:
            return 0, 0.0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="gateway-reload", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def check(self) -> None:
        with self._lock:
            watched = list(self._watched.items())
        for path, before in watched:
            now = self._signature(path)
            if now != before:
                with self._lock:
                    self._watched[path] = now
                    callback = self._callbacks.get(path)
                if callback is not None:
                    try:
                        callback(path)
                    except Exception:  # noqa: BLE001 - a failed reload must not stop the watcher
                        _log.exception("reload after a change in %s failed", path)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.check()
