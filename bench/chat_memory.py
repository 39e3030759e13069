"""Peak memory of the chat function as Lambda runs it, to size its MemorySize (docs/performance.md).

The function runs the way template.yaml deploys it: the layer's exec wrapper, then
tenantry.streaming_runtime, in its own process with the chat function's own env, against a fake
Lambda Runtime API, the embedded AWS (in this process, so its memory is not counted) and a fake of
Anthropic's Messages API answered by the real ``anthropic`` client. It serves JSON turns, streamed
turns of LONG_PIECES pieces, and GET /sessions, then the runtime process's peak resident set
(``VmHWM``) is read from /proc: the figure Lambda's ``Max Memory Used`` reports.
Run: make bench (or .venv/bin/python bench/chat_memory.py). Linux only (/proc).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from local import aws_calls  # noqa: E402
from local.embedded import EmbeddedAws  # noqa: E402
from local.gateway import sandbox  # noqa: E402
from local.gateway.api import load_api, shared_env  # noqa: E402
from local.gateway.core import LOCAL_FUNCTION_ENV  # noqa: E402
from local.gateway.intrinsics import LocalNames  # noqa: E402
from local.invoke import api_event  # noqa: E402
from tenantry import caches, streaming, tenancy  # noqa: E402
from tenantry.models.tenants import CreateTenantRequest  # noqa: E402
from tests.fakes.anthropic_server import Reply, fake_anthropic  # noqa: E402
from tests.fakes.lambda_runtime_api import RuntimeAnswer, fake_runtime_api  # noqa: E402
from tests.unit.test_streaming_runtime import lambda_like_layout, start_runtime  # noqa: E402

TURNS = int(sys.argv[1]) if len(sys.argv) > 1 else 40  # of each kind
LONG_PIECES = 2_000  # a long streamed answer (~8,000 words of output)
CALLER = {"tenant_id": "acme", "role": "tenant", "tier": "enterprise"}


def _memory_kb(pid: int) -> dict[str, int]:
    figures = {}
    for line in Path(f"/proc/{pid}/status").read_text(encoding="utf-8").splitlines():
        name, _, value = line.partition(":")
        if name in ("VmHWM", "VmRSS"):
            figures[name] = int(value.split()[0])
    return figures


def _runtime_pid(wrapper_pid: int) -> int:
    """The wrapper execs the runtime (same pid); follow a child if a shell stayed in between."""
    children = Path(f"/proc/{wrapper_pid}/task/{wrapper_pid}/children").read_text(encoding="utf-8").split()
    return int(children[0]) if children else wrapper_pid


def _status_and_body(answer: RuntimeAnswer) -> tuple[int, bytes]:
    """A buffered answer's proxy result, or a streamed one's prelude and body."""
    if answer.mode == "streamed":
        metadata, _, body = answer.streamed_bytes.partition(streaming.DELIMITER)
        return int(json.loads(metadata)["statusCode"]), body
    result = json.loads(answer.body)
    return int(result["statusCode"]), str(result.get("body", "")).encode()


def main() -> int:
    server = EmbeddedAws()
    server.start()
    try:
        os.environ.update(server.process_env())
        model_api = load_api(names=LocalNames(api_id=server.api_id))
        os.environ.update(shared_env(model_api))
        caches.clear_all()
        with aws_calls.acting_as("TenantsFunction"):
            tenancy.create_tenant(CreateTenantRequest(name="Acme", tier="enterprise", tenant_id="acme"))
        spec = model_api.functions["ChatFunction"]
        env = {**sandbox.lambda_env(spec, LOCAL_FUNCTION_ENV), **server.process_env()}
        with fake_anthropic() as model, tempfile.TemporaryDirectory() as root, fake_runtime_api() as api:
            env.update(
                {"ANTHROPIC_API_KEY": "sk-ant-bench", "ANTHROPIC_BASE_URL": model.url, "LLM_MAX_RETRIES": "0"}
            )
            env.pop("ANTHROPIC_API_KEY_PARAMETER", None)
            wrapper, _ = lambda_like_layout(Path(root), "")
            process = start_runtime(
                api,
                wrapper,
                REPO_ROOT / "functions" / "chat",
                **{name: value for name, value in env.items() if not name.startswith("AWS_LAMBDA_EXEC")},
            )
            # The runtime's log lines go to a pipe: read it as Lambda would, or a full pipe stalls it.
            assert process.stdout is not None
            threading.Thread(target=process.stdout.read, daemon=True).start()
            try:
                user = {"X-User-ID": "alice"}
                first = api.invoke(api_event("GET", "/sessions", authorizer=CALLER, headers=user))
                assert _status_and_body(first)[0] == 200, first.body
                pid = _runtime_pid(process.pid)  # the runtime is up: the wrapper has exec'd it
                after_init = _memory_kb(pid)
                model.default = Reply(text="a short answer of a few words", output_tokens=9)
                session = None
                for number in range(TURNS):
                    body = {"message": f"question {number}", **({"session_id": session} if session else {})}
                    answer = api.invoke(
                        api_event("POST", "/chat", body=body, authorizer=CALLER, headers=user)
                    )
                    status, text = _status_and_body(answer)
                    assert status == 200, (answer.mode, answer.body, text[:300])
                    session = session or json.loads(text)["session_id"]
                    if os.environ.get("BENCH_VERBOSE") and number % 10 == 9:
                        print(f"json turn {number + 1}: {_memory_kb(pid)}", flush=True)
                after_json = _memory_kb(pid)
                model.default = Reply(
                    pieces=[f"word{n} " for n in range(LONG_PIECES)], output_tokens=LONG_PIECES
                )
                for number in range(TURNS):
                    body = {"message": f"tell me more {number}", "session_id": session, "stream": True}
                    answer = api.invoke(
                        api_event("POST", "/chat", body=body, authorizer=CALLER, headers=user)
                    )
                    assert answer.mode == "streamed", answer.body
                    assert b"event: done" in answer.streamed_bytes, answer.streamed_bytes[-300:]
                    if os.environ.get("BENCH_VERBOSE") and number % 10 == 9:
                        print(f"streamed turn {number + 1}: {_memory_kb(pid)}", flush=True)
                after_stream = _memory_kb(pid)
            finally:
                process.kill()
                process.communicate()
    finally:
        caches.clear_all()
        server.stop()
    print("chat function under its streaming runtime (as deployed), real anthropic client, fake model")
    print(f"after init and one GET /sessions: peak RSS {after_init['VmHWM'] / 1024:.1f} MiB")
    print(f"after {TURNS} JSON turns: peak RSS {after_json['VmHWM'] / 1024:.1f} MiB")
    print(
        f"after {TURNS} streamed turns of {LONG_PIECES} pieces each: "
        f"peak RSS {after_stream['VmHWM'] / 1024:.1f} MiB (now {after_stream['VmRSS'] / 1024:.1f} MiB)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
