"""The local gateway beside serverless-offline 13.9.0: one trivial handler, one load generator, one run.

Both serve ``bench/functions/trivial`` (it answers a constant) on a REST API route, with Python
3.13 from this venv: ``tenantry dev`` with ``bench/overlay.yaml``, and serverless-offline 13.9.0
(with serverless 3.40.0, both pinned by ``bench/serverless-offline/package-lock.json`` and
installed with ``npm ci`` into ``.bench-cache/serverless-offline``, once) with
``bench/serverless-offline/serverless.yml``. Each runs its handler in Python processes of its own
(serverless-offline: one process per concurrent invocation, fed over stdin/stdout). The same
``bench/loadgen`` clients measure both at 1 and 8 keep-alive clients, alternating run by run, and
the report gives each one's median and range and the ratio (local gateway / serverless-offline).

Needs Node.js 20 and npm (``npm ci`` needs the registry once). Run: ``make bench`` or
``.venv/bin/python bench/serverless_offline.py``.
"""

from __future__ import annotations

import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from loadgen import REPEATS, Figures, get_request, interleaved, median_run, rate, spread

from local.stack_process import start_stack
from local.template import REPO_ROOT

BENCH = Path(__file__).resolve().parent
PEER_FILES = BENCH / "serverless-offline"
CACHE = REPO_ROOT / ".bench-cache" / "serverless-offline"
OVERLAY = BENCH / "overlay.yaml"
PATH = "/_bench/trivial"
START_TIMEOUT_SECONDS = 120


def install_peer() -> Path:
    """serverless and serverless-offline at the lock's versions, in the cache (npm ci, once)."""
    lock = (PEER_FILES / "package-lock.json").read_bytes()
    installed = CACHE / "package-lock.json"
    if (
        installed.exists()
        and installed.read_bytes() == lock
        and (CACHE / "node_modules" / "serverless-offline").exists()
    ):
        return CACHE
    CACHE.mkdir(parents=True, exist_ok=True)
    for name in ("package.json", "package-lock.json"):
        shutil.copy(PEER_FILES / name, CACHE / name)
    subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error"],  # noqa: S607
        cwd=CACHE,
        check=True,
    )
    return CACHE


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_peer(folder: Path, log: Path) -> tuple[subprocess.Popen[bytes], int]:
    """serverless-offline serving the trivial handler; (its process, its port)."""
    service = Path(tempfile.mkdtemp(prefix="tenantry-bench-offline-"))
    shutil.copy(PEER_FILES / "serverless.yml", service / "serverless.yml")
    (service / "node_modules").symlink_to(folder / "node_modules")
    (service / "functions").symlink_to(BENCH / "functions")
    port, lambda_port = _free_port(), _free_port()
    venv = Path(sys.executable).parent.parent
    env = {
        **os.environ,
        "VIRTUAL_ENV": str(venv),  # serverless-offline puts its bin first on PATH: python3 is ours
        "SLS_TELEMETRY_DISABLED": "1",
        "SLS_NOTIFICATIONS_MODE": "off",
    }
    command = [
        "node",
        str(folder / "node_modules" / "serverless" / "bin" / "serverless.js"),
        "offline",
        "--httpPort",
        str(port),
        "--lambdaPort",
        str(lambda_port),
        "--noPrependStageInUrl",
    ]
    with log.open("ab") as sink:
        process = subprocess.Popen(  # noqa: S603 - node with our own arguments
            command, cwd=service, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
        )
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while b"Server ready" not in log.read_bytes():
        if process.poll() is not None or time.monotonic() > deadline:
            stop_peer(process)
            raise RuntimeError(f"serverless-offline did not start:\n{log.read_text(errors='replace')}")
        time.sleep(0.2)
    return process, port


def stop_peer(process: subprocess.Popen[bytes]) -> None:
    """Stop serverless-offline and the Python processes it started (its own process group)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def main() -> int:
    folder = install_peer()
    with tempfile.TemporaryDirectory(prefix="tenantry-bench-") as home:
        stack = start_stack(Path(home) / "stack", overlay=OVERLAY, extra_args=["--quiet", "--no-reload"])
        peer, peer_port = start_peer(folder, Path(home) / "offline.log")
        try:
            ports = {
                "local gateway": (stack.port, stack.process.pid),
                "serverless-offline": (peer_port, peer.pid),
            }
            print(
                f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                f"Python {platform.python_version()}, Node {_node_version()}; load average "
                f"{os.getloadavg()[0]:.2f} before; trivial handler, median of {REPEATS} runs [range]"
            )
            for clients in (1, 8):
                runs = interleaved(
                    {
                        name: (
                            lambda port=port, pid=pid, clients=clients: rate(
                                port, get_request(PATH), clients, pid
                            )
                        )
                        for name, (port, pid) in ports.items()
                    }
                )
                _report(clients, runs)
        finally:
            stop_peer(peer)
            stack.stop()
    return 0


def _report(clients: int, runs: dict[str, list[Figures]]) -> None:
    medians = {name: median_run(side, "rps") for name, side in runs.items()}
    parts = [
        f"{name} {medians[name]['rps']:.0f} req/s {spread(side, 'rps')} "
        f"(p50 {medians[name]['p50_ms']:.2f} ms, {sum(run['errors'] for run in side):.0f} errors, "
        f"{medians[name]['cpu_ms']:.3f} CPU ms/req)"
        for name, side in runs.items()
    ]
    ratio = medians["local gateway"]["rps"] / medians["serverless-offline"]["rps"]
    print(
        f"{clients} client{'s' if clients > 1 else ''}: " + "; ".join(parts) + f"; ratio {ratio:.2f}",
        flush=True,
    )


def _node_version() -> str:
    found = subprocess.run(["node", "--version"], capture_output=True, text=True, check=False)  # noqa: S607
    return found.stdout.strip()


if __name__ == "__main__":
    sys.exit(main())
