"""Requests/s of the local stack at 1 and 8 keep-alive clients, and 1,000 publishes, side by side.

Cases: a trivial handler (the gateway's own cost), GET /health (a handler that reads DynamoDB), an
authorized GET /me whose authorizer answer is cached, then 1,000 single-event publishes by 10
clients at once, timed from the first to the last answer: all on one tenant (every publish
contends for the same stream head), then on 10 fresh tenants, one per client. The stack runs as
``tenantry dev`` in its own process, with the enterprise plan's limits lifted (the benchmark
measures the stack, not the tier); the load generator is ``bench/loadgen``.

Side by side: with ``BENCH_BASELINE=<git ref>`` (for instance the commit before a change) the same
cases also run on that commit of this repository (a git worktree under ``.bench-cache/``, on this
venv's libraries), alternating run by run, and each case reports both medians and the ratio
(current / baseline; for publish times, baseline / current, so above 1 is faster either way).
Run: ``make bench`` or ``.venv/bin/python bench/gateway.py``.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from loadgen import REPEATS, Figures, get_request, interleaved, median_run, publishes, rate, spread

from local.stack_process import LocalStack, start_stack
from local.template import REPO_ROOT

OVERLAY = Path(__file__).resolve().parent / "overlay.yaml"
CACHE = REPO_ROOT / ".bench-cache"
PUBLISHES = 1000
PUBLISH_CLIENTS = 10
BASELINE = os.environ.get("BENCH_BASELINE", "").strip()


def baseline_checkout(ref: str) -> Path:
    """A worktree of ``ref`` under .bench-cache (made once per commit)."""
    commit = subprocess.run(  # noqa: S603 - git with our own arguments
        ["git", "rev-parse", "--verify", f"{ref}^{{commit}}"],  # noqa: S607
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    folder = CACHE / f"baseline-{commit[:12]}"
    if not (folder / "template.yaml").exists():
        CACHE.mkdir(exist_ok=True)
        subprocess.run(  # noqa: S603
            ["git", "worktree", "add", "--detach", "--force", str(folder), commit],  # noqa: S607
            cwd=REPO_ROOT,
            check=True,
            capture_output=True,
        )
    return folder


def _prepare(stack: LocalStack) -> str:
    """An enterprise tenant whose plan never throttles; its key."""
    _, key = stack.create_tenant("enterprise")
    apigateway = stack.aws_client("apigateway")
    plan = next(p for p in apigateway.get_usage_plans()["items"] if p["name"].endswith("-enterprise"))
    apigateway.update_usage_plan(
        usagePlanId=plan["id"],
        patchOperations=[
            {"op": "replace", "path": "/throttle/rateLimit", "value": "1000000"},
            {"op": "replace", "path": "/throttle/burstLimit", "value": "1000000"},
            {"op": "replace", "path": "/quota/limit", "value": "1000000000"},
        ],
    )
    return key


def _report(label: str, runs: dict[str, list[Figures]], figure: str, higher_is_better: bool) -> None:
    medians = {name: median_run(side, figure) for name, side in runs.items()}
    style = ".0f" if figure == "rps" else ".2f"
    unit = "req/s" if figure == "rps" else "s"
    parts = [
        f"{name} {medians[name][figure]:{style}} {unit} {spread(side, figure, style)} "
        f"(p50 {medians[name]['p50_ms']:.2f} ms, {sum(run['errors'] for run in side):.0f} errors, "
        f"{medians[name]['cpu_ms']:.2f} CPU ms each)"
        for name, side in runs.items()
    ]
    line = f"{label:<34} " + "; ".join(parts)
    if len(medians) == 2:
        current, baseline = medians["current"][figure], medians["baseline"][figure]
        ratio = current / baseline if higher_is_better else baseline / current
        line += f"; current/baseline {ratio:.2f}"
    print(line, flush=True)


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="tenantry-bench-") as home:
        sources: dict[str, Path | None] = {"current": None}
        if BASELINE:
            sources["baseline"] = baseline_checkout(BASELINE)
        stacks: dict[str, LocalStack] = {}
        try:
            for name, source in sources.items():
                stacks[name] = start_stack(
                    Path(home) / name, overlay=OVERLAY, extra_args=["--quiet", "--no-reload"], source=source
                )
            keys = {name: _prepare(stack) for name, stack in stacks.items()}
            print(
                f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                f"Python {platform.python_version()}; load average {os.getloadavg()[0]:.2f} before; "
                f"median of {REPEATS} runs [range]" + (f"; baseline {BASELINE}" if BASELINE else "")
            )
            cases = [
                ("trivial handler", "/_bench/trivial", False),
                ("GET /health", "/health", False),
                ("GET /me (authorizer cached)", "/me", True),
            ]
            for label, path, keyed in cases:
                for clients in (1, 8):

                    def case(
                        name: str, path: str = path, keyed: bool = keyed, clients: int = clients
                    ) -> Figures:
                        stack = stacks[name]
                        request = get_request(path, keys[name] if keyed else None)
                        return rate(stack.port, request, clients, stack.process.pid)

                    runs = interleaved({name: _bound(case, name) for name in stacks})
                    _report(f"{label}, {clients} client{'s' if clients > 1 else ''}", runs, "rps", True)
            for label, one_tenant in (("one tenant", True), (f"{PUBLISH_CLIENTS} tenants", False)):

                def publish(name: str, one_tenant: bool = one_tenant) -> Figures:
                    stack = stacks[name]
                    # Fresh tenants each time: every sandbox meets each of them for the first time.
                    tenant_keys = (
                        [keys[name]] * PUBLISH_CLIENTS
                        if one_tenant
                        else [stack.create_tenant("enterprise")[1] for _ in range(PUBLISH_CLIENTS)]
                    )
                    return publishes(stack.port, tenant_keys, PUBLISHES, stack.process.pid)

                runs = interleaved({name: _bound(publish, name) for name in stacks})
                _report(f"{PUBLISHES} publishes, {label}", runs, "wall_s", False)
        finally:
            for stack in stacks.values():
                stack.stop()
    return 0


def _bound(run: Callable[[str], Figures], name: str) -> Callable[[], Figures]:
    return lambda: run(name)


if __name__ == "__main__":
    sys.exit(main())
