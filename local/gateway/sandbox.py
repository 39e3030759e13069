"""Running Lambda functions locally, the way Lambda runs them: each sandbox a process of its own.

- **Sandboxes.** A sandbox is one process running one function (``local/gateway/runtime.py``): its
  own ``os.environ`` (the function's env), its own stdout and stderr (the function's log file,
  ``$TENANTRY_HOME/logs/<LogicalId>.log``, as CloudWatch keeps a log group per function), its own
  copy of the layer and the handler module, and one invocation at a time, as a Lambda execution
  environment. Nothing of one function's module state, env or output can reach another's.
- **Pools.** A pool per function grows on demand (a cold start per sandbox) up to a limit and keeps
  idle sandboxes warm. Streamed invocations (InvokeWithResponseStream) have a pool of their own
  beside it, with a limit of their own: a subscription holds its sandbox for up to 15 minutes, and
  Lambda would scale out rather than make the function's other requests wait behind it.
  Sandboxes fork from :mod:`multiprocessing`'s fork server, which has the heavy third-party
  packages imported once, so a cold start imports only the function's code.
- **Limits.** A sandbox that passes its function's ``Timeout`` is ended (Lambda ends the
  execution environment too: its next invocation cold-starts); one that dies answers as Lambda's
  ``Runtime.ExitError``.
- **Tenant isolation mode.** A function whose template sets ``TenancyConfig`` to ``PER_TENANT``
  gets a pool per tenant: a tenant's sandboxes serve only that tenant, and the context's
  ``tenant_id`` reports it, as Lambda's tenant isolation mode does.
- **Hot reload.** A watcher polls the modification times under each function's code folder and
  the layers; a change retires the affected pools' sandboxes, and the next request cold-starts a
  fresh one. In-flight requests finish on the code they started with.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import multiprocessing
import os
import select
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from local import transport
from local.gateway import runtime
from local.gateway.api import FunctionSpec

_log = logging.getLogger("tenantry.local.gateway")

_FORKSERVER = multiprocessing.get_context("forkserver")
_FORKSERVER.set_forkserver_preload([runtime.__name__, *runtime.PRELOAD])


def start_fork_server() -> None:
    """Start the fork server (its preloading takes seconds) before the first request needs it, so
    a cold start is a fork and the function's own imports, not the stack's start-up."""
    process = _FORKSERVER.Process(target=runtime.warm_up, name="sandbox-fork-server-warm-up")
    process.start()
    process.join()


def lambda_env(spec: FunctionSpec, overrides: dict[str, str]) -> dict[str, str]:
    """The env Lambda gives one function: its own variables, the template's, local overrides."""
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


def sandbox_env(spec: FunctionSpec, overrides: dict[str, str], scoped_names: set[str]) -> dict[str, str]:
    """A sandbox's whole ``os.environ``: this process's (the embedded AWS's endpoint and fake
    credentials, what the developer's shell exports), without the variables that belong to some
    function of the template, then the function's own (:func:`lambda_env`)."""
    inherited = {name: value for name, value in os.environ.items() if name not in scoped_names}
    return inherited | lambda_env(spec, overrides)


_EXITED = {"errorType": "Runtime.ExitError", "errorMessage": "the sandbox exited"}


class TenantIdRequiredError(RuntimeError):
    """Lambda refuses to invoke a tenant-isolated function without a tenant id."""


class FunctionError(RuntimeError):
    """The function failed: Lambda's error of an invocation (``errorType``, ``errorMessage``)."""

    def __init__(self, error: dict[str, Any]) -> None:
        self.error_type = str(error.get("errorType", "Error"))
        self.message = str(error.get("errorMessage", ""))
        self.stack_trace = [str(line) for line in error.get("stackTrace") or []]
        super().__init__(self.message)  # str(): the errorMessage, as Lambda reports it


class FunctionTimeoutError(FunctionError):
    """The invocation passed the function's Timeout: Lambda ended it (and its sandbox)."""


class IntegrationTimeoutError(RuntimeError):
    """The caller stopped waiting (API Gateway's integration timeout); the function runs on."""


class StreamReceiver(Protocol):
    """Who reads a streamed invocation's output as the function writes it (InvokeWithResponseStream)."""

    def chunk(self, data: bytes) -> bool:
        """A piece the function wrote; False once nobody reads the stream any more."""
        ...

    def tick(self) -> bool:
        """Called about every :data:`STREAM_TICK_SECONDS` while the function runs; False once
        nobody reads the stream any more."""
        ...


STREAM_TICK_SECONDS = 1.0


@dataclass(frozen=True)
class Streamed:
    """A streamed invocation's end: what it wrote went to its receiver (or, with none, is in
    ``payload``, as Invoke buffers a streaming function's output)."""

    payload: bytes = b""


class Sandbox:
    """One sandbox process and the gateway's end of its connection."""

    def __init__(self, spec: runtime.SandboxSpec, generation: int) -> None:
        self.generation = generation
        self.ready = False  # its cold start (the handler module's import) is over
        self._pieces: list[bytes] = []  # a streamed answer's pieces, when nobody reads them
        self._gone_told = False
        self._connection, child_end = _FORKSERVER.Pipe()
        self._ended = False
        # The event loop that has this sandbox's connections in its selector, and the callback of
        # the loop's invocation running in it (watch).
        self._watcher: asyncio.AbstractEventLoop | None = None
        self._on_message: Callable[[dict[str, Any] | None], None] | None = None
        # The function's AWS calls, served by whichever thread waits for this sandbox (_receive).
        self._aws: Any = None
        aws_end: Any = None
        if spec.aws_endpoint:
            self._aws, aws_end = _FORKSERVER.Pipe()
        self._process = _FORKSERVER.Process(
            target=runtime.serve,
            args=(child_end, spec, aws_end),
            name=f"sandbox-{spec.logical_id}",
            daemon=True,
        )
        self._process.start()
        child_end.close()
        self._poller: Any = None
        if aws_end is not None:
            aws_end.close()
            # One poll set for the sandbox's life: both connections, registered once.
            self._poller = select.poll()
            for connection in (self._connection, self._aws):
                self._poller.register(connection.fileno(), select.POLLIN)

    def _poll(self, wait_s: float | None) -> bool:
        """Wait until the sandbox has a message for the caller (None: for as long as it takes),
        serving the function's AWS calls on the way; False if ``wait_s`` passed first."""
        if self._aws is None:
            return bool(self._connection.poll(wait_s))
        deadline = None if wait_s is None else time.monotonic() + wait_s
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready = {fd for fd, _ in self._poller.poll(None if left is None else left * 1000)}
            if self._aws.fileno() in ready:
                self._aws.send_bytes(transport.serve_channel_message(self._aws.recv_bytes()))
            if self._connection.fileno() in ready:
                return True
            if not ready:
                return False

    def _receive(self, wait_s: float | None, receiver: StreamReceiver | None = None) -> dict[str, Any] | None:
        """The sandbox's next message, or None when ``wait_s`` passed first. A streaming
        function's pieces on the way go to ``receiver`` as they come (or are kept, without one)."""
        deadline = None if wait_s is None else time.monotonic() + wait_s
        try:
            while True:
                left = None if deadline is None else deadline - time.monotonic()
                if receiver is None:
                    wait = left
                else:
                    wait = STREAM_TICK_SECONDS if left is None else min(left, STREAM_TICK_SECONDS)
                if not self._poll(None if wait is None else max(0.0, wait)):
                    if deadline is not None and time.monotonic() >= deadline:
                        return None
                    if receiver is not None and not receiver.tick():
                        self._tell_gone()
                    continue
                data = self._connection.recv_bytes()
                if data[:1] != runtime.CHUNK:
                    message: dict[str, Any] = json.loads(data)
                    return message
                if receiver is None:
                    self._pieces.append(data[1:])
                elif not receiver.chunk(data[1:]):
                    self._tell_gone()
        except (EOFError, OSError):
            self.close()
            raise FunctionError(_EXITED) from None

    def _tell_gone(self) -> None:
        """Nobody reads the stream any more: the function's next write answers False."""
        if not self._gone_told:
            self._gone_told = True
            self._connection.send_bytes(runtime.GONE)

    def wait_ready(self, wait_s: float | None) -> bool:
        """Wait for the cold start; False if ``wait_s`` passed first. Raises its import error."""
        if self.ready:
            return True
        message = self._receive(wait_s)
        if message is None:
            return False
        if "error" in message:
            self.close()
            raise FunctionError(message["error"])
        self.ready = True
        return True

    def send(self, event: Any, request_id: str, tenant_id: str | None, timeout_s: float) -> None:
        deadline_ms = int((time.time() + timeout_s) * 1000)
        message = {"event": event, "request_id": request_id, "deadline_ms": deadline_ms}
        message["tenant_id"] = tenant_id
        self._pieces, self._gone_told = [], False
        try:
            self._connection.send_bytes(json.dumps(message).encode())
        except OSError:
            self.close()
            raise FunctionError(_EXITED) from None

    def answer(self, wait_s: float | None, receiver: StreamReceiver | None = None) -> tuple[bool, Any]:
        """(True, the result) once the invocation answered (:class:`Streamed` when the function
        streamed); (False, None) if ``wait_s`` passed. Raises the function's error."""
        message = self._receive(wait_s, receiver)
        if message is None:
            return False, None
        return True, self.result_of(message)

    def result_of(self, message: dict[str, Any]) -> Any:
        """The invocation's result in the sandbox's last message; raises the function's error."""
        if "error" in message:
            raise FunctionError(message["error"])
        if message.get("streamed"):
            return Streamed(b"".join(self._pieces))
        return message["result"]

    # ------------------------------------------------------------------ on an event loop
    def watch(
        self, loop: asyncio.AbstractEventLoop, on_message: Callable[[dict[str, Any] | None], None]
    ) -> None:
        """Have ``loop`` read this sandbox while an invocation runs, instead of a thread waiting
        for it: the function's AWS calls are served as they come, and ``on_message`` gets its
        answer (None when the sandbox died). Called on the loop's thread; :meth:`unwatch` ends it.

        The loop keeps the sandbox's connections in its selector between invocations (adding
        and removing them cost four system calls per request); while no invocation of the
        loop's is running, the first readiness it sees takes them out (a thread has the sandbox
        now, or it died idle)."""
        self._on_message = on_message
        if self._watcher is not loop:
            loop.add_reader(self._connection.fileno(), self._readable)
            if self._aws is not None:
                loop.add_reader(self._aws.fileno(), self._aws_readable)
            self._watcher = loop

    def unwatch(self) -> None:
        self._on_message = None

    def _forget_loop(self) -> None:
        """Out of the loop's selector (on the loop's thread), before its connections close."""
        loop, self._watcher = self._watcher, None
        if loop is None:
            return
        for connection in (self._connection, self._aws):
            if connection is not None and not connection.closed:
                loop.remove_reader(connection.fileno())

    def _readable(self) -> None:
        on_message = self._on_message
        if on_message is None:
            self._forget_loop()
            return
        try:
            if not self._connection.poll(0):
                return  # a thread read it first (a readiness seen before the thread took over)
            data = self._connection.recv_bytes()
        except (EOFError, OSError):
            on_message(None)
            return
        if data[:1] == runtime.CHUNK:
            self._pieces.append(data[1:])  # a streaming function invoked without a stream: buffered
            return
        on_message(json.loads(data))

    def _aws_readable(self) -> None:
        on_message = self._on_message
        if on_message is None or self._aws is None:
            self._forget_loop()
            return
        try:
            if self._aws.poll(0):
                self._aws.send_bytes(transport.serve_channel_message(self._aws.recv_bytes()))
        except (EOFError, OSError):
            on_message(None)

    @property
    def alive(self) -> bool:
        return not self.closed and self._process.is_alive()

    @property
    def closed(self) -> bool:
        return self._ended or bool(self._connection.closed)

    def close(self) -> None:
        """End the sandbox (idle, retired, timed out or broken). Its connections close on the
        loop's thread when a loop still has them in its selector (a closed descriptor's number is
        reused by the next pipe, which the selector would then take for this one)."""
        self._ended = True
        self._on_message = None
        if self._process.is_alive():
            self._process.kill()
        self._process.join(timeout=5)
        loop = self._watcher
        if loop is not None:
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is not loop:
                try:
                    loop.call_soon_threadsafe(self._close_connections)
                except RuntimeError:  # the loop is closed: nothing watches any more
                    self._watcher = None
                else:
                    return
        self._close_connections()

    def _close_connections(self) -> None:
        self._forget_loop()
        for connection in (self._connection, self._aws):
            if connection is not None and not connection.closed:
                connection.close()


class _LoopInvocation:
    """One invocation an event loop waits for (:meth:`FunctionPool.invoke_on_loop`): the same
    clocks as :meth:`FunctionPool.invoke` (the function's Timeout ends the sandbox; the caller's
    patience lets it run on, in the background, to its end)."""

    def __init__(
        self,
        pool: FunctionPool,
        sandbox: Sandbox,
        loop: asyncio.AbstractEventLoop,
        done: Callable[[Any, BaseException | None], None],
    ) -> None:
        self._pool = pool
        self._sandbox = sandbox
        self._loop = loop
        self._done = done
        self._timer: asyncio.TimerHandle | None = None
        self._timeout = 0.0
        self._patience: float | None = None

    def start(self, event: Any, request_id: str, patience_s: float | None) -> None:
        timeout_s = float(self._pool.spec.timeout_s)
        try:
            self._sandbox.send(event, request_id, None, timeout_s)
        except FunctionError as error:
            self._pool.release(self._sandbox)
            self._done(None, error)
            return
        now = time.monotonic()
        self._timeout = now + timeout_s
        self._patience = None if patience_s is None else now + patience_s
        limit = self._timeout if self._patience is None else min(self._timeout, self._patience)
        self._sandbox.watch(self._loop, self._answered)
        self._timer = self._loop.call_at(self._loop.time() + (limit - now), self._expired)

    def _stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._sandbox.unwatch()

    def _answered(self, message: dict[str, Any] | None) -> None:
        self._stop()
        if message is None:
            self._sandbox.close()
            self._pool.release(self._sandbox)
            self._done(None, FunctionError(_EXITED))
            return
        try:
            result = self._sandbox.result_of(message)
        except FunctionError as error:
            self._pool.release(self._sandbox)
            self._done(None, error)
            return
        self._pool.release(self._sandbox, answered=True)
        self._done(result, None)

    def _expired(self) -> None:
        self._stop()
        if self._patience is not None and self._patience < self._timeout:
            self._pool._finish_later(self._sandbox, self._timeout)
            self._done(None, IntegrationTimeoutError(self._pool.spec.name))
            return
        self._sandbox.close()
        self._pool.release(self._sandbox)
        timed_out = f"Task timed out after {float(self._pool.spec.timeout_s):.2f} seconds"
        self._done(None, FunctionTimeoutError({"errorType": "Sandbox.Timedout", "errorMessage": timed_out}))


@dataclass(frozen=True)
class PoolSettings:
    """What every pool of a gateway shares."""

    local_env: dict[str, str]
    scoped_names: frozenset[str]
    layer_dirs: tuple[str, ...]
    max_size: int = 8
    # Sandboxes for streamed invocations, beside max_size (open subscriptions last minutes).
    max_streams: int = 64
    log_folder: Path | None = None
    stdout_to_stderr: bool = False
    record_calls_for: tuple[str, ...] = ()


class FunctionPool:
    """Warm sandboxes of one function; one invocation per sandbox at a time."""

    def __init__(self, spec: FunctionSpec, settings: PoolSettings, *, streams_only: bool = False) -> None:
        self.spec = spec
        self.settings = settings
        self.env = sandbox_env(spec, settings.local_env, set(settings.scoped_names))
        self._idle: list[Sandbox] = []
        self._size = 0
        self._generation = 0
        self._available = threading.Condition(threading.Lock())
        self._tenants: dict[str, FunctionPool] = {}  # tenant isolation mode: a pool per tenant
        self._streams: FunctionPool | None = None  # streamed invocations' own sandboxes
        self._streams_only = streams_only

    def _sandbox_spec(self) -> runtime.SandboxSpec:
        log_path = None
        if self.settings.log_folder is not None:
            self.settings.log_folder.mkdir(parents=True, exist_ok=True)
            log_path = str(self.settings.log_folder / f"{self.spec.logical_id}.log")
        return runtime.SandboxSpec(
            logical_id=self.spec.logical_id,
            function_name=self.spec.name,
            arn=self.spec.arn,
            code_dir=str(self.spec.code_dir),
            module=self.spec.module_file.stem,
            handler=self.spec.handler_name,
            memory_mb=self.spec.memory_mb,
            layer_dirs=self.settings.layer_dirs,
            env=self.env,
            log_path=log_path,
            stdout_to_stderr=self.settings.stdout_to_stderr,
            record_calls_for=self.settings.record_calls_for,
            streaming=self.spec.streaming_runtime,
            aws_endpoint=self._aws_endpoint(),
        )

    def _aws_endpoint(self) -> str | None:
        """The endpoint the function's AWS calls go to when this process serves it: they then
        take the sandbox's AWS channel (``local/transport.py``)."""
        endpoint = self.env.get("AWS_ENDPOINT_URL", "")
        return endpoint if endpoint and transport.serves(endpoint) else None

    def retire(self) -> None:
        """Code changed: end idle sandboxes; busy ones end when they finish."""
        with self._available:
            self._generation += 1
            idle, self._idle = self._idle, []
            self._size -= len(idle)
            self._available.notify_all()
            others = [*self._tenants.values(), *([self._streams] if self._streams is not None else [])]
        for sandbox in idle:
            sandbox.close()
        for pool in others:
            pool.retire()

    close = retire

    def acquire(self) -> Sandbox:
        """A free sandbox: an idle one, or a new one (cold-starting), or the next one released."""
        with self._available:
            while True:
                if self._idle:
                    return self._idle.pop()
                if self._size < self.settings.max_size:
                    self._size += 1
                    generation = self._generation
                    break
                self._available.wait()
        try:
            return Sandbox(self._sandbox_spec(), generation)
        except BaseException:
            with self._available:
                self._size -= 1
                self._available.notify()
            raise

    def release(self, sandbox: Sandbox, *, answered: bool = False) -> None:
        """Back to the pool (or ended, if retired or broken). ``answered``: it has just answered
        its invocation, so its process is alive (no need to ask the kernel)."""
        with self._available:
            alive = not sandbox.closed if answered else sandbox.alive
            keep = sandbox.generation == self._generation and alive and sandbox.ready
            if keep:
                self._idle.append(sandbox)
            else:
                self._size -= 1
            self._available.notify()
        if not keep:
            sandbox.close()

    def invoke(
        self,
        event: Any,
        request_id: str,
        tenant_id: str | None = None,
        *,
        patience_s: float | None = None,
        receiver: StreamReceiver | None = None,
    ) -> Any:
        """Run the handler with ``event`` in a free sandbox. A failed invocation raises
        :class:`FunctionError` (:class:`FunctionTimeoutError` past the function's Timeout, which
        ends the sandbox, as Lambda ends the environment). With a ``receiver``, it is
        InvokeWithResponseStream: what the function streams goes to it as it comes.

        ``patience_s``: how long the caller waits once it has a sandbox, its cold start included
        (API Gateway's integration timeout; waiting for a free sandbox is this pool's limit, not
        Lambda's, which scales out). Past it, :class:`IntegrationTimeoutError`, and the invocation
        runs on to its end (or its Timeout) in the background before its sandbox is free again.

        A function in tenant isolation mode runs in the tenant's own sandboxes (created on its
        first request, never lent to another tenant), and its context reports ``tenant_id``."""
        if self.spec.tenant_isolation:
            if not tenant_id:
                raise TenantIdRequiredError(
                    f"{self.spec.name} is tenant-isolated: an invoke needs a tenant id"
                )
            return self._tenant_pool(tenant_id).invoke(
                event, request_id, tenant_id, patience_s=patience_s, receiver=receiver
            )
        if receiver is not None and not self._streams_only:
            return self._stream_pool().invoke(
                event, request_id, tenant_id, patience_s=patience_s, receiver=receiver
            )
        sandbox = self.acquire()
        patience = None if patience_s is None else time.monotonic() + patience_s
        timeout_s = float(self.spec.timeout_s)
        try:
            if not sandbox.wait_ready(None if patience is None else patience - time.monotonic()):
                # Lambda still runs the invocation once its environment is up.
                self._finish_later(sandbox, None, (event, request_id, tenant_id))
                raise IntegrationTimeoutError(self.spec.name)
            sandbox.send(event, request_id, tenant_id, timeout_s)
            timeout = time.monotonic() + timeout_s
            limit = timeout if patience is None else min(timeout, patience)
            answered, result = sandbox.answer(limit - time.monotonic(), receiver)
        except FunctionError:
            self.release(sandbox)
            raise
        if answered:
            self.release(sandbox, answered=True)
            return result
        if patience is not None and patience < timeout:
            self._finish_later(sandbox, timeout)
            raise IntegrationTimeoutError(self.spec.name)
        sandbox.close()
        self.release(sandbox)
        timed_out = f"Task timed out after {timeout_s:.2f} seconds"
        raise FunctionTimeoutError({"errorType": "Sandbox.Timedout", "errorMessage": timed_out})

    def invoke_on_loop(
        self,
        loop: asyncio.AbstractEventLoop,
        event: Any,
        request_id: str,
        done: Callable[[Any, BaseException | None], None],
        *,
        patience_s: float | None = None,
    ) -> bool:
        """:meth:`invoke` without a thread, from ``loop``'s thread: the event goes to a warm idle
        sandbox and the loop reads its answer, then ``done(result, None)`` or ``done(None,
        error)`` (the errors :meth:`invoke` raises) runs on the loop. False, and nothing done,
        when no warm sandbox is idle or the function needs more (a tenant's own pool, a cold
        start): the caller invokes on a thread instead."""
        if self.spec.tenant_isolation or self._streams_only:
            return False
        with self._available:
            if not self._idle:
                return False
            sandbox = self._idle.pop()
        _LoopInvocation(self, sandbox, loop, done).start(event, request_id, patience_s)
        return True

    def _finish_later(
        self, sandbox: Sandbox, timeout: float | None, pending: tuple[Any, str, str | None] | None = None
    ) -> None:
        """Let an invocation the caller gave up on run to its end in the background, then free the
        sandbox: ``pending`` (event, request id, tenant id) still to send once its cold start is
        over, else already sent and answering until ``timeout`` (its Timeout, which ends it)."""

        def finish() -> None:
            try:
                deadline = timeout
                if pending is not None:
                    sandbox.wait_ready(None)
                    sandbox.send(*pending, float(self.spec.timeout_s))
                    deadline = time.monotonic() + float(self.spec.timeout_s)
                assert deadline is not None
                if not sandbox.answer(deadline - time.monotonic())[0]:
                    sandbox.close()  # past its Timeout: Lambda ends it
            except FunctionError:
                pass
            self.release(sandbox)

        threading.Thread(target=finish, name="sandbox-finisher", daemon=True).start()

    def _tenant_pool(self, tenant_id: str) -> FunctionPool:
        with self._available:
            pool = self._tenants.get(tenant_id)
            if pool is None:
                pool = FunctionPool(dataclasses.replace(self.spec, tenant_isolation=False), self.settings)
                self._tenants[tenant_id] = pool
            return pool

    def _stream_pool(self) -> FunctionPool:
        with self._available:
            if self._streams is None:
                settings = dataclasses.replace(self.settings, max_size=self.settings.max_streams)
                self._streams = FunctionPool(self.spec, settings, streams_only=True)
            return self._streams

    @property
    def warm(self) -> int:
        others = [*self._tenants.values(), *([self._streams] if self._streams is not None else [])]
        return len(self._idle) + sum(pool.warm for pool in others)


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
