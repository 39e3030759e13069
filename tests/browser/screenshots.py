"""``make screenshots``: the console on a seeded local stack, saved as docs/console-*.png."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from local.stack_process import start_stack
from local.template import REPO_ROOT
from tests.browser import chromium
from tests.browser.seed import seed

DOCS = REPO_ROOT / "docs"


def main() -> int:
    reason = chromium.missing()
    if reason is not None:
        print(f"cannot take screenshots: {reason}", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="tenantry-shots-") as folder:
        stack = start_stack(Path(folder) / "home")
        try:
            seed(stack)
            with chromium.browser_context(Path(folder) / "profile") as context:
                page = context.new_page()
                page.goto(f"{stack.url}/console")
                page.get_by_label("Admin key").fill(stack.admin_key)
                page.get_by_role("button", name="Sign in").click()
                page.locator('#tenants-table tr[data-tenant="acme"]').wait_for()
                page.screenshot(path=str(DOCS / "console-tenants.png"), full_page=True)
                page.get_by_role("link", name="acme", exact=True).click()
                page.locator('[data-chart="requests"] rect').first.wait_for()
                page.screenshot(path=str(DOCS / "console-tenant.png"), full_page=True)
                page.get_by_role("button", name="Offboard").click()
                page.get_by_label("Type the tenant id to confirm").fill("acme")
                page.screenshot(path=str(DOCS / "console-confirm.png"))
        finally:
            stack.stop()
    print("wrote docs/console-tenants.png, docs/console-tenant.png and docs/console-confirm.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
