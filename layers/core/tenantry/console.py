"""The operator console's static files: one HTML page, its script, its stylesheet and its icon.

The page holds no inline script or style, so its Content-Security-Policy allows only this origin
(``'self'``) and nothing inline: an injected ``<script>`` or ``style=`` attribute does not run. Asset
URLs carry a content hash (``console/console.js?v=…``) so a browser may cache them for a year and
still never runs an old script against a new page. The page reaches the admin API from the same
origin, with the admin key the operator types (kept in ``sessionStorage``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from tenantry.errors import NotFound
from tenantry.tiers import TIERS

CONTENT_SECURITY_POLICY: Final = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
ASSET_TYPES: Final = {
    "console.js": "text/javascript; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
    # The page names its icon, so a browser never asks the API root for /favicon.ico (API
    # Gateway's 403 for a path no route has).
    "favicon.svg": "image/svg+xml",
}
PAGE_TYPE: Final = "text/html; charset=utf-8"
PAGE_FILE: Final = "console.html"


@dataclass(frozen=True, slots=True)
class StaticFile:
    content_type: str
    body: str
    headers: dict[str, str]


@dataclass(frozen=True, slots=True)
class Console:
    page: StaticFile
    assets: dict[str, StaticFile]

    def asset(self, name: str) -> StaticFile:
        found = self.assets.get(name)
        if found is None:
            raise NotFound(f"No console asset {name!r}", code="asset_not_found", field="asset")
        return found


def _version(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def load(folder: Path) -> Console:
    """Read the page and its assets from ``folder``; the page's ``{{console.js}}``-style
    placeholders become versioned relative URLs."""
    assets: dict[str, StaticFile] = {}
    # The tier names come from the one tier table, in a <meta> the script reads: no inline data.
    page = (folder / PAGE_FILE).read_text(encoding="utf-8").replace("{{tiers}}", ",".join(TIERS))
    for name, content_type in ASSET_TYPES.items():
        body = (folder / name).read_text(encoding="utf-8")
        assets[name] = StaticFile(
            content_type,
            body,
            {**SECURITY_HEADERS, "Cache-Control": "public, max-age=31536000, immutable"},
        )
        page = page.replace("{{" + name + "}}", f"console/{name}?v={_version(body)}")
    if "{{" in page:
        raise ValueError(f"{PAGE_FILE} names an asset that is not in {sorted(ASSET_TYPES)}")
    # The page itself is never cached: a new deployment's page (and asset versions) shows at once.
    page_file = StaticFile(PAGE_TYPE, page, {**SECURITY_HEADERS, "Cache-Control": "no-store"})
    return Console(page=page_file, assets=assets)
