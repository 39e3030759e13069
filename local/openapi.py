"""The merged OpenAPI document: every function's Powertools resolver, one spec.

``make openapi`` writes it to docs/openapi.json (a unit test fails when that file is stale), and
the local gateway serves it with Swagger UI at /docs. Which routes need a key comes from
template.yaml, the same place API Gateway learns it.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

from local import template

TITLE = "Tenantry API"
VERSION = "1.0.0"
DESCRIPTION = (
    "Multi-tenant API: the X-API-Key header resolves every request to one tenant. "
    "Admin keys reach /tenants and /stats; tenant keys reach everything else."
)


def _code_dir(resource: dict[str, Any]) -> Path:
    return template.REPO_ROOT / str(resource["Properties"]["CodeUri"]).rstrip("/")


def _api_events(resource: dict[str, Any]) -> list[dict[str, Any]]:
    events = resource.get("Properties", {}).get("Events", {}) or {}
    return [event["Properties"] for event in events.values() if event.get("Type") == "Api"]


def _load_app(logical_id: str, code_dir: Path) -> Any:
    module_name = f"tenantry_openapi_{logical_id}"
    spec = importlib.util.spec_from_file_location(module_name, code_dir / "app.py")
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load {code_dir / 'app.py'}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module.app


def _security(route: dict[str, Any]) -> list[dict[str, list[str]]]:
    auth = route.get("Auth") or {}
    return [] if auth.get("Authorizer") == "NONE" else [{"ApiKey": []}]


def build_spec() -> dict[str, Any]:
    """Merge every API function's schema; paths sorted so the output is stable."""
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    security_by_operation: dict[tuple[str, str], list[dict[str, list[str]]]] = {}
    for logical_id, resource in sorted(template.resources_of_type("AWS::Serverless::Function").items()):
        routes = _api_events(resource)
        if not routes:
            continue
        for route in routes:
            security_by_operation[(route["Path"], route["Method"].lower())] = _security(route)
        app = _load_app(logical_id, _code_dir(resource))
        schema = json.loads(app.get_openapi_json_schema(title=TITLE, version=VERSION))
        for path, operations in schema.get("paths", {}).items():
            paths.setdefault(path, {}).update(operations)
        schemas.update(schema.get("components", {}).get("schemas", {}))
    for path, operations in paths.items():
        for method, operation in operations.items():
            operation["security"] = security_by_operation.get((path, method), [{"ApiKey": []}])
    return {
        "openapi": "3.1.0",
        "info": {"title": TITLE, "version": VERSION, "description": DESCRIPTION},
        "servers": [
            {"url": "/v1", "description": "API Gateway stage"},
            {"url": "/", "description": "make dev"},
        ],
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "securitySchemes": {"ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}},
        },
    }


def render() -> str:
    return json.dumps(build_spec(), indent=2, sort_keys=False) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description="Write the merged OpenAPI document")
    parser.add_argument("--write", type=Path, help="output file (default: stdout)")
    args = parser.parse_args()
    text = render()
    if args.write:
        args.write.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
