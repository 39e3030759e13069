"""docs/openapi.json is the merged spec of every function, and it is never stale."""

from __future__ import annotations

import json

from local import template
from tests.conftest import REPO_ROOT
from tooling import openapi


def test_committed_openapi_document_is_current() -> None:
    # Given the document in docs/ and the one the code produces now
    committed = (REPO_ROOT / "docs" / "openapi.json").read_text(encoding="utf-8")
    # Then they are identical (run `make openapi` after changing a route or a model)
    assert committed == openapi.render(), "docs/openapi.json is stale: run `make openapi`"


def test_every_template_route_is_documented_with_its_security() -> None:
    spec = json.loads(openapi.render())
    for route in template.api_routes():
        operation = spec["paths"][route.path][route.method.lower()]
        open_route = route.auth.get("Authorizer") == "NONE"
        assert operation["security"] == ([] if open_route else [{"ApiKey": []}]), route.path
