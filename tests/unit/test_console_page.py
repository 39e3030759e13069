"""GET /console and its assets through the console function: headers, CSP, versioned assets."""

from __future__ import annotations

import os
import re
from html.parser import HTMLParser
from typing import Any

import pytest

from tenantry import console
from tenantry.tiers import TIERS
from tests.conftest import api_event, load_function


class _Inline(HTMLParser):
    """Collects what a strict CSP would block: inline scripts, <style>, style= and on*= attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []
        self.sources: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        if tag == "script":
            self._in_script = "src" not in names
            self.sources.append(str(names.get("src")))
        if tag == "link":
            self.sources.append(str(names.get("href")))
        if tag == "style":
            self.problems.append("<style>")
        for name, _ in attrs:
            if name == "style" or name.startswith("on"):
                self.problems.append(f"{tag} {name}=")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.problems.append("inline script")


def get(path: str, lambda_context: Any, **params: str) -> dict[str, Any]:
    handler = load_function("console").lambda_handler
    event = api_event(
        "GET", path, headers={"Accept": "text/html"}, resource=path, path_parameters=params or None
    )
    if params:
        event["resource"] = "/console/{asset}"
    response: dict[str, Any] = handler(event, lambda_context)
    headers = dict(response.get("headers") or {})
    headers.update({name: values[-1] for name, values in (response.get("multiValueHeaders") or {}).items()})
    response["headers"] = headers
    return response


def test_page_is_html_with_a_strict_csp_and_nothing_inline(lambda_context: Any) -> None:
    # When the page is asked for, without any key
    response = get("/console", lambda_context)
    # Then it is HTML with the strict policy, never cached, and holds nothing the policy would block
    assert response["statusCode"] == 200
    headers = response["headers"]
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    policy = headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "script-src 'self'" in policy and "style-src 'self'" in policy
    assert "unsafe" not in policy and "http" not in policy
    assert headers["Cache-Control"] == "no-store"
    assert headers["X-Content-Type-Options"] == "nosniff"
    parser = _Inline()
    parser.feed(response["body"])
    assert parser.problems == []
    # And it names only its own versioned assets (relative: the page works under /v1 and locally)
    assert sorted(parser.sources) == sorted(
        f"console/{name}?v={re.escape(version)}"
        for name, version in re.findall(
            r"console/(console\.(?:js|css)|favicon\.svg)\?v=([0-9a-f]{16})", response["body"]
        )
    )
    assert len(parser.sources) == 3
    # And it names its icon, served beside it (no browser asks the API root for /favicon.ico)
    assert re.search(
        r'<link rel="icon" type="image/svg\+xml" href="console/favicon\.svg\?v=[0-9a-f]{16}">',
        response["body"],
    )
    assert f'content="{",".join(TIERS)}"' in response["body"]
    assert "{{" not in response["body"]


@pytest.mark.parametrize(
    ("asset", "kind"),
    [("console.js", "text/javascript"), ("console.css", "text/css"), ("favicon.svg", "image/svg+xml")],
)
def test_assets_are_served_with_their_type_and_cached(lambda_context: Any, asset: str, kind: str) -> None:
    response = get(f"/console/{asset}", lambda_context, asset=asset)
    assert response["statusCode"] == 200
    assert response["headers"]["Content-Type"].startswith(kind)
    assert "immutable" in response["headers"]["Cache-Control"]
    assert response["body"] == console.load(console_folder()).asset(asset).body


def console_folder() -> Any:
    from local.template import REPO_ROOT

    return REPO_ROOT / "functions" / "console" / "static"


@pytest.mark.parametrize("asset", ["app.py", "..%2Fapp.py", "console.html", "x.js"])
def test_anything_else_under_console_is_refused(lambda_context: Any, asset: str) -> None:
    response = get(f"/console/{asset}", lambda_context, asset=asset)
    assert response["statusCode"] == 422
    assert "asset" in response["body"]


def test_an_unknown_placeholder_in_the_page_fails_loudly(tmp_path: Any) -> None:
    for name in console.ASSET_TYPES:
        (tmp_path / name).write_text("/* */", encoding="utf-8")
    (tmp_path / "console.html").write_text('<script src="{{other.js}}"></script>', encoding="utf-8")
    with pytest.raises(ValueError, match="asset"):
        console.load(tmp_path)


def test_sam_build_ships_the_page_and_its_assets() -> None:
    # Given `sam build` ran (make test runs it first; CI must never skip this)
    built = console_folder().parent.parent.parent / ".aws-sam" / "build" / "ConsoleFunction" / "static"
    if not built.exists():
        if os.environ.get("CI") == "true":
            pytest.fail("the built ConsoleFunction is missing: make test runs `sam build` first")
        pytest.skip("run `make build` first")
    # Then the deployed function holds exactly the files the page needs
    for name in ("console.html", *console.ASSET_TYPES):
        assert (built / name).read_bytes() == (console_folder() / name).read_bytes(), name
