"""The pages only the local gateway serves: Swagger UI at ``/docs`` and the spec at ``/openapi.json``.

They are not template routes and a deployed stage has no such paths (design §5), so they are
answered before route matching and never reach an authorizer, a usage plan or the access log.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from local import template
from local.gateway.server import HttpResponse

OPENAPI_FILE = template.REPO_ROOT / "docs" / "openapi.json"
SWAGGER_ASSETS = ("swagger-ui-bundle.min.js", "swagger-ui.min.css")


class LocalPages:
    """Answers the local-only pages; ``server_url`` is the gateway's URL once it is serving."""

    def __init__(self, server_url: Callable[[], str]) -> None:
        self._server_url = server_url

    @staticmethod
    def serves(method: str, path: str) -> bool:
        """Whether ``path`` may be one of the pages (they read files: not on the server's loop)."""
        return method == "GET" and (path == "/openapi.json" or path.startswith("/docs"))

    def answer(self, method: str, path: str) -> HttpResponse | None:
        """The page at ``path``, or None when it is not one of them (the request goes on)."""
        if method != "GET":
            return None
        if path == "/openapi.json":
            spec = json.loads(OPENAPI_FILE.read_text(encoding="utf-8"))
            spec["servers"] = [{"url": self._server_url(), "description": "make dev"}]
            return HttpResponse(200, [("Content-Type", "application/json")], json.dumps(spec).encode())
        if path in ("/docs", "/docs/"):
            return HttpResponse(200, [("Content-Type", "text/html; charset=utf-8")], _SWAGGER_PAGE.encode())
        asset = path.removeprefix("/docs/")
        if asset in SWAGGER_ASSETS:
            kind = "application/javascript" if asset.endswith(".js") else "text/css"
            return HttpResponse(200, [("Content-Type", kind)], _swagger_asset(asset))
        return None


def _swagger_asset(name: str) -> bytes:
    """Swagger UI's files ship inside Powertools, so /docs works without a network."""
    from aws_lambda_powertools.event_handler.openapi import swagger_ui  # noqa: PLC0415

    return (Path(swagger_ui.__file__).parent / name).read_bytes()


_SWAGGER_PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Tenantry API (local)</title>
<link rel="stylesheet" href="/docs/swagger-ui.min.css"></head>
<body><div id="ui"></div>
<script src="/docs/swagger-ui-bundle.min.js"></script>
<script>
SwaggerUIBundle({url: "/openapi.json", dom_id: "#ui", persistAuthorization: true});
</script>
</body>
</html>
"""
