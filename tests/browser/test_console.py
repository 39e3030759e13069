"""The operator console in a real browser (Debian's Chromium driven by Playwright) on a local stack.

Each test starts its own stack and seeds it (tests/browser/seed.py), so the tests do not depend on
each other's order. Where Chromium is missing the tests skip with the reason, except under CI=true,
where they fail: CI installs Chromium (.ci/run) and must run them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from local.stack_process import LocalStack, start_stack
from tests.browser import chromium
from tests.browser.seed import Figures, Seeded, acme_day_list, seed

AUDIT = (Path(__file__).parent / "audit.js").read_text(encoding="utf-8")


@pytest.fixture(autouse=True)
def _need_chromium() -> None:
    reason = chromium.missing()
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must run the browser test: {reason}")
    pytest.skip(reason)


@dataclass
class Console:
    stack: LocalStack
    seeded: Seeded
    page: Any
    context: Any
    console_messages: list[str]

    def sign_in(self, key: str | None = None) -> None:
        field = self.page.get_by_label("Admin key")
        field.fill(key or self.stack.admin_key)
        field.press("Enter")

    def row(self, tenant_id: str) -> Any:
        return self.page.locator(f'#tenants-table tr[data-tenant="{tenant_id}"]')

    def cell(self, tenant_id: str, column: str) -> str:
        return str(self.row(tenant_id).locator(f'[data-col="{column}"]').inner_text()).strip()

    def number(self, tenant_id: str, column: str) -> int:
        return int(self.cell(tenant_id, column).replace(",", ""))

    def order(self) -> list[str]:
        return list(
            self.page.locator("#tenants-table tbody tr").evaluate_all(
                "rows => rows.map(r => r.dataset.tenant)"
            )
        )

    def audit(self) -> None:
        result = self.page.evaluate(AUDIT)
        assert result["problems"] == [], result["problems"]
        assert result["texts"] > 5

    def confirm(self, button: str) -> None:
        self.page.get_by_role("button", name=button, exact=True).click()
        dialog = self.page.get_by_role("dialog")
        dialog.wait_for()
        dialog.get_by_role("button", name=button, exact=True).click()
        dialog.wait_for(state="hidden")

    def fact(self, name: str) -> str:
        return str(self.page.locator(f'[data-fact="{name}"] dd').inner_text()).strip()

    def status(self) -> Any:
        return self.page.locator("#status")

    def csp_violations(self) -> list[str]:
        return [text for text in self.console_messages if "Content Security Policy" in text]


@pytest.fixture
def console(tmp_path: Path) -> Iterator[Console]:
    stack = start_stack(tmp_path / "home", authorizer_ttl=2)
    try:
        seeded = seed(stack)
        with chromium.browser_context(tmp_path / "profile") as context:
            context.grant_permissions(["clipboard-read", "clipboard-write"], origin=stack.url)
            # Waits end on an event; the bound only stops a broken page from hanging the run.
            context.set_default_timeout(30_000)
            page = context.new_page()
            messages: list[str] = []
            page.on("console", lambda message: messages.append(message.text))
            page.on("pageerror", lambda error: messages.append(f"pageerror: {error}"))
            response = page.goto(f"{stack.url}/console")
            assert response is not None and response.status == 200
            headers = response.headers
            assert "script-src 'self'" in headers["content-security-policy"]
            assert "unsafe-inline" not in headers["content-security-policy"]
            yield Console(stack, seeded, page, context, messages)
    finally:
        stack.stop()


def expect_figures(console: Console, tenant_id: str, figures: Figures) -> None:
    assert console.number(tenant_id, "requests") == figures.requests
    assert console.number(tenant_id, "allowed") == figures.allowed
    assert console.number(tenant_id, "denied") == figures.denied
    assert console.number(tenant_id, "tokens") == figures.tokens


def test_tenants_table_errors_sorting_filters_and_accessibility(console: Console) -> None:
    page = console.page
    # Given the login form: keyboard focus starts in the key field, which is labelled
    assert page.evaluate("document.activeElement.id") == "admin-key"
    console.audit()
    # When a wrong key is typed, then the page says the key was refused (401), and stays on login
    console.sign_in("tnt_admin_thisIsNotAKeyAtAll12345678")
    alert = page.get_by_role("alert")
    alert.wait_for()
    assert "401" in alert.inner_text() and "refused" in alert.inner_text()
    assert page.evaluate("sessionStorage.getItem('tenantry.adminKey')") is None
    # When the admin key is typed and Enter pressed, then the seeded tenants show with their figures
    console.sign_in()
    console.row("acme").wait_for()
    assert sorted(console.order()) == ["acme", "globex", "initech", "umbrella"]
    for tenant_id, figures in console.seeded.month.items():
        expect_figures(console, tenant_id, figures)
    stats = {
        row["tenant_id"]: row
        for row in console.stack.request("GET", "/stats?limit=100", key=console.stack.admin_key).json[
            "tenants"
        ]
    }
    acme = stats["acme"]
    shown_p95 = console.cell("acme", "p95_latency_ms")
    assert shown_p95.endswith(" ms")
    assert float(shown_p95.removesuffix(" ms").replace(",", "")) == acme["p95_latency_ms"]
    assert console.cell("initech", "p95_latency_ms") == "–"
    quota = console.row("acme").locator('[data-col="quota_use"] [role="img"]')
    expected_quota = round(console.seeded.month["acme"].requests / 10_000 * 1000) / 10
    assert float(quota.get_attribute("data-percent")) == expected_quota
    assert quota.get_attribute("aria-label") == f"{expected_quota}% of 10,000 requests a month"
    assert console.cell("umbrella", "status") == "suspended"
    assert page.evaluate("localStorage.length") == 0
    console.audit()
    # When Requests is sorted from the keyboard, then rows follow it both ways (ties by id)
    requests_header = page.locator('th[data-sort="requests"] button')
    requests_header.focus()
    page.keyboard.press("Enter")
    assert console.order() == ["initech", "umbrella", "globex", "acme"]
    assert page.locator('th[data-sort="requests"]').get_attribute("aria-sort") == "ascending"
    page.keyboard.press("Enter")
    assert console.order() == ["acme", "globex", "initech", "umbrella"]
    # When filtered by tier, then by status, then only those tenants show
    page.get_by_label("Tier", exact=True).select_option("pro")
    assert sorted(console.order()) == ["globex", "umbrella"]
    page.get_by_label("Status", exact=True).select_option("suspended")
    assert console.order() == ["umbrella"]
    page.get_by_label("Tier", exact=True).select_option("basic")
    assert console.order() == []
    assert page.get_by_text("No tenant matches these filters.").is_visible()
    page.get_by_label("Tier", exact=True).select_option("")
    page.get_by_label("Status", exact=True).select_option("")
    # And the keyboard reaches the filters, the sort buttons and the tenant links, with a visible focus
    reached: list[str] = []
    page.get_by_role("link", name="Skip to content").focus()
    for _ in range(25):
        page.keyboard.press("Tab")
        focused = page.evaluate(
            """() => { const el = document.activeElement; const style = getComputedStyle(el);
            return {id: el.id, tag: el.tagName, text: el.textContent.trim(), outline: style.outlineStyle,
                    width: style.outlineWidth}; }"""
        )
        if focused["tag"] == "BODY":
            break
        assert focused["outline"] != "none" and focused["width"] != "0px", focused
        reached.append(focused["id"] or focused["text"])
    assert {"filter-tier", "filter-status", "refresh", "Requests", "acme"} <= set(reached), reached
    # When the network fails, then the page says so
    page.route("**/stats?**", lambda route: route.abort())
    page.get_by_role("button", name="Refresh").click()
    page.get_by_role("alert").filter(has_text="Network error").wait_for()
    page.unroute("**/stats?**")
    # When the stored key stops working (revoked or wrong), then the next call returns to login, 401
    page.evaluate("sessionStorage.setItem('tenantry.adminKey', 'tnt_admin_revokedOrWrongKey0123456789')")
    page.get_by_role("button", name="Refresh").click()
    page.get_by_role("alert").filter(has_text="401").wait_for()
    assert page.get_by_label("Admin key").is_visible()
    # When a tenant's own key is typed (last: the edge meters its 403 as that tenant's request), then
    # the page says it is not an admin key (403), shows no tenant's figures and forgets the key
    console.sign_in(console.seeded.keys["globex"])
    page.get_by_role("alert").filter(has_text="403").wait_for()
    assert "admin key" in page.get_by_role("alert").inner_text()
    assert page.get_by_label("Admin key").is_visible()
    assert page.locator("#tenants-table tbody tr").count() == 0
    assert page.evaluate("sessionStorage.getItem('tenantry.adminKey')") is None
    # And nothing broke the Content-Security-Policy, which still blocks an injected inline script
    assert console.csp_violations() == []
    ran = page.evaluate(
        """() => { const s = document.createElement('script'); s.textContent = 'window.__inline = 1';
        document.body.append(s); return window.__inline === 1; }"""
    )
    assert ran is False


def test_tenant_page_charts_and_actions_suspend_rotate_offboard(console: Console) -> None:
    page = console.page
    stack = console.stack
    # Given an operator's override of acme's burst
    patched = stack.request("PATCH", "/tenants/acme", key=stack.admin_key, body={"limits": {"burst": 4}})
    assert patched.status == 200
    console.sign_in()
    # When acme is opened from its link (keyboard)
    link = page.get_by_role("link", name="acme", exact=True)
    link.focus()
    page.keyboard.press("Enter")
    page.locator('[data-chart="requests"] rect').first.wait_for()
    assert page.url.endswith("#/tenants/acme")
    # Then its month figures and its 30 days of charts are the seeded ones
    month = console.seeded.month["acme"]
    assert console.fact("requests") == f"{month.requests:,}"
    assert console.fact("denied") == f"{month.denied:,}"
    assert console.fact("tokens") == f"{month.tokens:,}"
    days = acme_day_list(console.seeded)
    assert len(days) == 30
    for chart, read in (
        ("requests", lambda f: f.requests),
        ("allowed", lambda f: f.allowed),
        ("denied", lambda f: f.denied),
        ("tokens", lambda f: f.tokens),
    ):
        bars = page.locator(f'[data-chart="{chart}"] rect').evaluate_all(
            "rects => rects.map(r =>"
            " [r.dataset.day, Number(r.dataset.value), Number(r.getAttribute('height'))])"
        )
        assert [(day, value) for day, value, _ in bars] == [(day, read(f)) for day, f in days], chart
        tallest = max(value for _, value, _ in bars)
        assert all(height > 0 for _, value, height in bars if value == tallest)
        assert all(height == 0 for _, value, height in bars if value == 0)
    # And its limits show what is in force and where each comes from
    limits = page.locator("#limits-table tbody tr").evaluate_all(
        "rows => rows.map(r => [r.dataset.limit, r.cells[1].innerText, r.cells[2].innerText.trim()])"
    )
    assert limits == [
        ["requests_per_minute", "10", "tier (basic)"],
        ["burst", "4", "override"],
        ["requests_per_month", "10,000", "tier (basic)"],
        ["tokens_per_month", "100,000", "tier (basic)"],
    ]
    # And the keys show as hints only: the tenant's key is nowhere on the page
    old_key = console.seeded.keys["acme"]
    assert page.locator("#keys-table tbody tr").count() == 1
    assert old_key not in page.content()
    console.audit()
    # When a rotation is cancelled with Escape, nothing happens
    page.get_by_role("button", name="Rotate key").click()
    page.get_by_role("dialog").wait_for()
    page.keyboard.press("Escape")
    page.get_by_role("dialog").wait_for(state="hidden")
    assert page.locator("#new-key").is_hidden()
    # When the key is rotated, then the new key is shown once, can be copied, and works over HTTP
    console.confirm("Rotate key")
    new_key_field = page.get_by_label("New API key")
    new_key_field.wait_for()
    new_key = new_key_field.input_value()
    assert new_key.startswith("tnt_live_")
    page.get_by_role("button", name="Copy").click()
    assert page.evaluate("navigator.clipboard.readText()") == new_key
    assert page.locator("#keys-table tbody tr").count() == 2
    me = stack.request("GET", "/me", key=new_key)
    assert me.status == 200 and me.json["tenant_id"] == "acme"
    assert page.evaluate("Object.keys(sessionStorage)") == ["tenantry.adminKey"]
    assert new_key not in page.evaluate("JSON.stringify(sessionStorage) + JSON.stringify(localStorage)")
    console.audit()
    # When the tier is changed, then the page and the API show the new tier
    page.get_by_label("New tier").select_option("pro")
    console.confirm("Change tier")
    console.status().filter(has_text="now on pro").wait_for()
    assert console.fact("tier") == "pro"
    # And the new key stays on screen while the operator stays on this tenant
    assert new_key_field.input_value() == new_key
    # When the tenant is suspended, then its keys get 403 and the page offers Resume instead
    console.confirm("Suspend")
    console.status().filter(has_text="suspended").wait_for()
    assert console.fact("status") == "suspended"
    assert page.get_by_role("button", name="Suspend").is_disabled()
    assert stack.request("GET", "/me", key=new_key).status == 403
    # When offboarding, then the id must be typed before Confirm works; Enter then offboards
    page.get_by_role("button", name="Offboard").click()
    dialog = page.get_by_role("dialog")
    dialog.wait_for()
    console.audit()
    assert dialog.get_by_role("button", name="Offboard").is_disabled()
    typed = dialog.get_by_label("Type the tenant id to confirm")
    typed.fill("acm")
    assert dialog.get_by_role("button", name="Offboard").is_disabled()
    typed.fill("acme")
    typed.press("Enter")
    console.status().filter(has_text="acme was offboarded").wait_for()
    assert sorted(console.order()) == ["globex", "initech", "umbrella"]
    # And leaving the tenant's page forgot the new key
    assert page.locator("#new-key").is_hidden() and new_key_field.input_value() == ""
    assert stack.request("GET", "/tenants/acme", key=stack.admin_key).status == 404
    assert stack.request("GET", "/me", key=new_key).status == 401
    assert stack.request("GET", "/me", key=old_key).status == 401
    assert console.csp_violations() == []
