"""``tenantry dev`` (the stack behind ``make dev``) and ``tenantry invoke`` (sam local invoke, no Docker).

``dev`` starts the embedded AWS (moto's DynamoDB and API Gateway on loopback, state in
``--home``), the local gateway in front of the real handlers, makes sure an admin key exists
(``$TENANTRY_HOME/admin-key``, mode 600), onboards the tenants of ``--tenants`` and serves until
Ctrl-C or SIGTERM. ``invoke`` runs one function with one event against the same embedded AWS.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import signal
import socket
import sys
import threading
import urllib.parse
import uuid
import warnings
from pathlib import Path
from typing import Any

import yaml

from local import aws_calls, embedded, faults, samples
from tenantry_cli.http_client import call

ADMIN_KEY_FILE = "admin-key"
GATEWAY_FILE = "gateway.json"
SAM_ENV_FILE = "sam-env.json"
DOCKER_HOST = "host.docker.internal"


# ---------------------------------------------------------------------- state files
def _write_private(path: Path, text: str) -> None:
    path.write_text("", encoding="utf-8")
    path.chmod(0o600)
    path.write_text(text, encoding="utf-8")


def make_private(home: Path) -> None:
    """The state folder is the owner's alone: it holds key values in plaintext (the admin key, and
    API Gateway's copy of every tenant key in the embedded AWS's snapshot). The folder becomes
    0700, files already there 0600, and this process's umask keeps every later file and folder
    (snapshots, journals, logs) private too."""
    os.umask(0o077)
    home.mkdir(parents=True, exist_ok=True)
    home.chmod(0o700)
    for path in home.rglob("*"):
        if path.is_symlink():
            continue
        path.chmod(0o700 if path.is_dir() else 0o600)


def _admin_key(gateway_url: str, home: Path, create: Any) -> tuple[str, bool]:
    """The admin key in ``home``, if the API still accepts it; otherwise a new one."""
    path = home / ADMIN_KEY_FILE
    if path.exists():
        existing = path.read_text(encoding="utf-8").strip()
        status, _ = call(gateway_url, "GET", "/tenants?limit=1", existing)
        if status == 200:
            return existing, False
    raw_key: str = create()
    _write_private(path, raw_key + "\n")
    return raw_key, True


def write_sam_env(home: Path, endpoint_url: str, function_env: dict[str, dict[str, str]]) -> Path:
    """``sam local invoke --env-vars`` file: the functions in Docker reach the embedded AWS."""
    port = endpoint_url.rsplit(":", 1)[1]
    shared = {**embedded.client_env(f"http://{DOCKER_HOST}:{port}")}
    document: dict[str, dict[str, str]] = {"Parameters": shared}
    for logical_id, env in function_env.items():
        document[logical_id] = {**env, **shared}
    path = home / SAM_ENV_FILE
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return path


def _tenant_file(path: Path) -> list[dict[str, Any]]:
    loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or []
    tenants = loaded.get("tenants", []) if isinstance(loaded, dict) else loaded
    if not isinstance(tenants, list) or not all(isinstance(entry, dict) for entry in tenants):
        raise SystemExit(f"{path}: expected a list of {{name, tier, tenant_id?}} entries")
    return tenants


def _existing_tenants(gateway_url: str, admin_key: str) -> tuple[set[str], set[str]]:
    """(ids, names) of the tenants already onboarded, so a restart does not onboard them twice."""
    ids: set[str] = set()
    names: set[str] = set()
    token: str | None = None
    while True:
        path = "/tenants?limit=100" + (f"&next_token={urllib.parse.quote(token)}" if token else "")
        status, page = call(gateway_url, "GET", path, admin_key)
        if status != 200:
            raise SystemExit(f"listing tenants failed: {status} {page}")
        for tenant in page["tenants"]:
            ids.add(tenant["tenant_id"])
            names.add(tenant["name"])
        token = page.get("next_token")
        if not token:
            return ids, names


def _onboard(gateway_url: str, admin_key: str, tenants: list[dict[str, Any]]) -> None:
    existing_ids, existing_names = _existing_tenants(gateway_url, admin_key)
    for entry in tenants:
        label = entry.get("tenant_id") or entry.get("name")
        if entry.get("tenant_id") in existing_ids or (
            "tenant_id" not in entry and entry.get("name") in existing_names
        ):
            print(f"  tenant {label}: exists already (its key was shown when it was created)")
            continue
        body = {name: entry[name] for name in ("name", "tier", "tenant_id", "config") if name in entry}
        status, answer = call(gateway_url, "POST", "/tenants", admin_key, body)
        if status == 201:
            tenant = answer["tenant"]
            print(f"  tenant {tenant['tenant_id']} ({tenant['tier']}): {answer['api_key']}")
        elif status == 409:
            print(f"  tenant {label}: exists already (its key was shown when it was created)")
        else:
            print(f"  tenant {label}: {status} {json.dumps(answer)}", file=sys.stderr)


# ---------------------------------------------------------------------- tenantry dev
def _port_taken(host: str, port: int) -> bool:
    """Whether something already listens on ``host``:``port`` (0, any free port, never is)."""
    if port == 0:
        return False
    try:
        with socket.create_server((host, port)):
            return False
    except OSError as exc:
        return exc.errno == errno.EADDRINUSE


def port_hint(host: str, port: int) -> str:
    """One line: the port is taken, and a free one to use instead."""
    free = next(
        (candidate for candidate in range(port + 1, port + 50) if not _port_taken(host, candidate)), 0
    )
    instead = (
        f"PORT={free} make dev (or tenantry dev --port {free})" if free else "PORT=0 make dev (any free port)"
    )
    return f"tenantry dev: port {port} on {host} is already in use; start on another with {instead}"


def _dev(args: argparse.Namespace) -> int:
    from local.gateway import sandbox  # noqa: PLC0415 - heavy imports only for this command
    from local.gateway.api import TemplateError, check_parameters  # noqa: PLC0415
    from local.gateway.core import Gateway, GatewayOptions  # noqa: PLC0415

    if _port_taken(args.host, args.port):
        print(port_hint(args.host, args.port), file=sys.stderr)
        return 2
    home = Path(args.home).resolve()
    make_private(home)
    # Powertools warns on every request of a handler that publishes no metric; noise locally.
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())

    try:
        fault_spec = faults.FaultSpec.parse(args.faults)
    except faults.FaultSpecError as exc:
        print(f"FAULTS: {exc}", file=sys.stderr)
        return 2
    try:
        parameters = check_parameters(args.parameter, [Path(overlay) for overlay in args.overlay])
    except TemplateError as exc:
        print(f"--parameter: {exc}", file=sys.stderr)
        return 2
    # The sandboxes' fork server preloads for seconds in a process of its own: meanwhile the
    # embedded AWS starts in this one.
    fork_server = threading.Thread(target=sandbox.start_fork_server, name="fork-server-start")
    fork_server.start()
    aws = embedded.EmbeddedAws(home, fault_spec=fault_spec, change_feed=not args.no_change_feed)
    aws.start()
    fork_server.join()
    gateway = Gateway(
        aws,
        GatewayOptions(
            host=args.host,
            port=args.port,
            home=home,
            overlays=[Path(overlay) for overlay in args.overlay],
            authorizer_ttl=args.authorizer_ttl,
            hot_reload=not args.no_reload,
            access_log_echo=None if args.quiet else sys.stderr,
            integration_timeout=args.integration_timeout,
            parameters=parameters,
        ),
    )
    try:
        try:
            gateway.start()
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            # Taken between the check above and now.
            print(port_hint(args.host, args.port), file=sys.stderr)
            return 2

        def create_admin_key() -> str:
            # In this process, whose env the gateway pointed at the embedded AWS and its tables.
            from tenantry import tenancy  # noqa: PLC0415

            with aws_calls.acting_as("TenantsFunction"):
                raw_key: str = tenancy.create_admin_key()[0]
            return raw_key

        admin_key, created = _admin_key(gateway.url, home, create_admin_key)
        sam_env = write_sam_env(
            home, aws.endpoint_url, {spec.logical_id: spec.env for spec in gateway.model.functions.values()}
        )
        info = {
            "url": gateway.url,
            "pid": os.getpid(),
            "endpoint_url": aws.endpoint_url,
            "admin_key_file": str(home / ADMIN_KEY_FILE),
        }
        print(f"Tenantry local stack on {gateway.url}  (Swagger UI: {gateway.url}/docs)")
        print(f"  admin key ({'new' if created else 'kept'}, in {home / ADMIN_KEY_FILE}): {admin_key}")
        print(f"  operator console: {gateway.url}/console (sign in with the admin key)")
        print(f"  embedded AWS: {aws.endpoint_url}   sam local invoke --env-vars {sam_env}")
        if fault_spec:
            print(f"  FAULTS: {fault_spec.text}  (AWS errors injected; see docs/local-stack.md)")
        if args.tenants:
            _onboard(gateway.url, admin_key, _tenant_file(Path(args.tenants)))
        print(
            f"  logs: access log in {home / 'access.log'}"
            + ("" if args.quiet else " (and here)")
            + f", each function's in {home / 'logs'}/; tenantry logs [--tenant ID] [--follow]"
        )
        print(
            "Ctrl-C stops it; the state is kept in",
            home,
            "(every acknowledged write is journaled to disk first)",
            flush=True,
        )
        # Written last: its presence tells scripts and tests that the stack is ready.
        (home / GATEWAY_FILE).write_text(json.dumps(info), encoding="utf-8")
        stop.wait()
    finally:
        print("stopping…", file=sys.stderr, flush=True)
        gateway.stop()
        aws.stop()
        (home / GATEWAY_FILE).unlink(missing_ok=True)
    return 0


# ---------------------------------------------------------------------- tenantry invoke
def _invoke(args: argparse.Namespace) -> int:
    from local.gateway import sandbox  # noqa: PLC0415
    from local.gateway.api import load_api, shared_env  # noqa: PLC0415
    from local.gateway.core import LAYERS_DIR, LOCAL_FUNCTION_ENV  # noqa: PLC0415
    from local.gateway.intrinsics import LocalNames  # noqa: PLC0415

    event = json.loads(Path(args.event).read_text(encoding="utf-8")) if args.event else {}
    home = Path(args.home).resolve()
    endpoint = embedded.running_endpoint(home)
    own_server: embedded.EmbeddedAws | None = None
    if endpoint is None:
        own_server = embedded.EmbeddedAws(home)
        own_server.start()
        endpoint, api_id = own_server.endpoint_url, own_server.api_id
    else:
        api_id = json.loads((home / embedded.ENDPOINT_FILE).read_text(encoding="utf-8")).get("api_id", "")
    try:
        embedded.configure_process(endpoint)
        model = load_api([Path(overlay) for overlay in args.overlay], names=LocalNames(api_id=api_id))
        if args.function not in model.functions:
            known = ", ".join(sorted(model.functions))
            print(f"no function {args.function} in template.yaml (known: {known})", file=sys.stderr)
            return 2
        os.environ.update(shared_env(model))
        if samples.needs_the_sample_tenant(event):
            # The layer logs to stdout; here stdout carries the result only.
            with contextlib.redirect_stdout(sys.stderr):
                for done in samples.ensure_sample_tenant():
                    print(f"tenantry invoke: {done} for the sample events", file=sys.stderr)
        # One sandbox, as sam local invoke runs one container: the handler's logs on stderr, the
        # result (or Lambda's error object) on stdout.
        pool = sandbox.FunctionPool(
            model.functions[args.function],
            sandbox.PoolSettings(
                local_env=LOCAL_FUNCTION_ENV,
                scoped_names=frozenset(name for spec in model.functions.values() for name in spec.env),
                layer_dirs=(str(LAYERS_DIR / "core"),),
                max_size=1,
                stdout_to_stderr=True,
            ),
        )
        streamed = any(
            route.streamed and route.method == event.get("httpMethod") and route.path == event.get("resource")
            for route in model.routes
        )
        # A STREAM route's event is invoked as API Gateway invokes it (InvokeWithResponseStream):
        # the prelude on stderr, the body on stdout piece by piece as the function writes it.
        printer = StreamPrinter() if streamed else None
        try:
            result, status = pool.invoke(event, str(uuid.uuid4()), receiver=printer), 0
        except sandbox.FunctionError as exc:
            result = {"errorMessage": exc.message, "errorType": exc.error_type, "stackTrace": exc.stack_trace}
            status = 1
        finally:
            pool.close()
        if printer is not None and printer.started:
            if status:
                print(
                    f"\ntenantry invoke: the stream ended with an error: {json.dumps(result)}",
                    file=sys.stderr,
                )
            return status
        print(json.dumps(result))
        return status
    finally:
        if own_server is not None:
            own_server.stop()


class StreamPrinter:
    """Prints a streamed invocation's output as it comes (a ``sandbox.StreamReceiver``): the
    prelude (status and headers) on stderr, then the body on stdout."""

    DELIMITER = b"\x00" * 8

    def __init__(self) -> None:
        self._head = bytearray()
        self.started = False
        self.in_body = False

    def chunk(self, data: bytes) -> bool:
        self.started = True
        if not self.in_body:
            self._head += data
            head, found, rest = bytes(self._head).partition(self.DELIMITER)
            if not found:
                return True
            self.in_body = True
            print(
                f"tenantry invoke: streamed answer {head.decode(errors='replace')}",
                file=sys.stderr,
                flush=True,
            )
            data = rest
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return True

    def tick(self) -> bool:
        return True


def register(subcommands: Any) -> None:
    dev = subcommands.add_parser("dev", help="Serve the whole API locally (embedded AWS + local gateway)")
    dev.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    dev.add_argument(
        "--port", type=int, default=int(os.environ.get("PORT", "3000")), help="0 picks a free port"
    )
    dev.add_argument("--home", default=os.environ.get("TENANTRY_HOME", ".tenantry"), help="state folder")
    dev.add_argument("--tenants", help="YAML list of tenants to onboard: name, tier, tenant_id?")
    dev.add_argument("--authorizer-ttl", type=int, help="override ReauthorizeEvery (seconds)")
    dev.add_argument("--overlay", action="append", default=[], help="extra template with more functions")
    dev.add_argument(
        "--parameter",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a template parameter's value, as sam deploy --parameter-overrides (e.g. CorsAllowOrigin=…)",
    )
    dev.add_argument("--no-reload", action="store_true", help="do not watch functions/ and layers/")
    dev.add_argument(
        "--integration-timeout",
        type=float,
        default=None,
        help="API Gateway's integration timeout in seconds for every route (504 after it); "
        "default: each route's from template.yaml (29 s where it sets none)",
    )
    dev.add_argument(
        "--faults",
        default=os.environ.get(faults.ENV_VAR, ""),
        help="inject AWS's failures, e.g. 'conflict=20%%,throttle=20%%' (docs/local-stack.md)",
    )
    dev.add_argument("--quiet", action="store_true", help="do not echo access-log lines to stderr")
    dev.add_argument(
        "--no-change-feed",
        action="store_true",
        help="subscriptions poll DynamoDB once a second, as on AWS, instead of waking on each write",
    )
    dev.set_defaults(handler=_dev)

    invoke = subcommands.add_parser(
        "invoke", help="Invoke one function in a local sandbox, like sam local invoke (no Docker)"
    )
    invoke.add_argument("function", help="the function's logical id in template.yaml, e.g. HealthFunction")
    invoke.add_argument("-e", "--event", help="event JSON file, e.g. events/health.json")
    invoke.add_argument("--home", default=os.environ.get("TENANTRY_HOME", ".tenantry"), help="state folder")
    invoke.add_argument("--overlay", action="append", default=[], help="extra template with more functions")
    invoke.set_defaults(handler=_invoke)
