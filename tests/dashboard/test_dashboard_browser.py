"""The dashboard end to end, as a person uses it: headless Chromium against the live app.

Debian's Chromium (/usr/bin/chromium, installed by .ci/setup) driven by Playwright; the app
served by pytest-django's live_server; a real Celery worker delivering to a real receiver.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
from pathlib import Path

import pytest
from conftest import PASSWORD, ROOT, create_member, make_tenant, wait_until
from playwright.sync_api import ConsoleMessage, Page, Request, Response, expect, sync_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
# The README's picture is rewritten only on request, so test runs leave the work tree alone.
SCREENSHOT = ROOT / "docs" / "webhook-page.png"
UPDATE_SCREENSHOT = os.environ.get("UPDATE_SCREENSHOT") == "1"
DELIVERY_TIMEOUT = 30.0
WEBHOOKS = "/ui/settings/integrations/webhooks"

pytestmark = pytest.mark.e2e


def watch(page: Page, problems: list[str], expected_404: set[str]) -> None:
    """Record every JavaScript error, console error and failed request of ``page``.

    Pages in ``expected_404`` are visited to see that they are not found; Chromium reports
    their status on the console, which is not a problem.
    """

    def console(message: ConsoleMessage) -> None:
        if message.type not in ("error", "warning"):
            return
        if message.text.endswith("status of 404 (Not Found)") and message.location.get("url") in expected_404:
            return
        problems.append(f"console {message.type} on {page.url}: {message.text}")

    def response(response: Response) -> None:
        if response.status >= 400 and response.url not in expected_404:
            problems.append(f"{response.status} for {response.url}")

    def request_failed(request: Request) -> None:
        # A request cut short because the test moved on to the next page (ERR_ABORTED) says
        # nothing about this one; a refused one (ERR_BLOCKED_BY_CSP, a reset, ...) does.
        if request.failure != "net::ERR_ABORTED":
            problems.append(f"request failed: {request.url} {request.failure}")

    page.on("pageerror", lambda error: problems.append(f"pageerror on {page.url}: {error}"))
    page.on("console", console)
    page.on("requestfailed", request_failed)
    page.on("response", response)


# The viewports the layout is checked at: a laptop and a phone.
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
# A threat whose description fills the document's 1 MB, and whose command is 270 characters.
LONG_PAYLOAD_DATA = {
    "threat_id": "thr_long",
    "severity": "high",
    "description": "A" * 1_040_000,
    "mcp_server": {"name": "custom-server", "command": "node " + "x" * 265},
}


def assert_no_wider_than_window(page: Page) -> None:
    width = page.evaluate("Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)")
    assert width <= page.viewport_size["width"], f"{page.url} is {width} px wide at {page.viewport_size['width']}"


def refuse_policy_violations(request) -> tuple[int, dict[str, str], bytes]:
    if request.headers.get("X-CyberCage-Event") == "policy.violation":
        return 500, {}, b"policy engine unavailable"
    return 200, {}, b"ok"


def log_in(page: Page, base: str, email: str) -> None:
    page.goto(base + WEBHOOKS)
    expect(page).to_have_url(re.compile(r"/ui/login\?next="))
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(base + WEBHOOKS)


def reload_until(page: Page, selector: str, count: int, timeout: float = DELIVERY_TIMEOUT) -> None:
    """Reload ``page`` until ``selector`` matches at least ``count`` elements, or fail."""

    def seen() -> bool:
        page.reload()
        return page.locator(selector).count() >= count

    wait_until(seen, timeout=timeout, interval=0.5, message=f"{selector} x{count} not seen on {page.url}")


@pytest.mark.django_db(transaction=True)
def test_dashboard_when_used_in_a_browser_manages_a_webhook_end_to_end(live_server, receiver, start_worker):
    acme = make_tenant("Acme Security")
    globex = make_tenant("Globex")
    create_member(acme.organization, "alice@acme.example")
    create_member(globex.organization, "bob@globex.example")
    start_worker(WEBHOOK_RETRY_DELAYS="0,0,0,0,0")  # a refused event fails at once
    hook = receiver.url("/dashboard-hook")
    receiver.responses["/dashboard-hook"] = refuse_policy_violations
    base = live_server.url
    problems: list[str] = []
    expected_404: set[str] = set()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport=DESKTOP, permissions=["clipboard-read", "clipboard-write"])
            page = context.new_page()
            watch(page, problems, expected_404)

            # Anonymous: sent to the login page, then back.
            log_in(page, base, "alice@acme.example")
            expect(page.get_by_text("No webhooks yet")).to_be_visible()
            header = page.locator("header.topbar")
            expect(header).to_contain_text("CyberCage · Organization Settings › Integrations › Webhooks")
            # The stylesheet (a static file served by the app) is applied.
            assert header.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(31, 58, 138)"

            # Create a webhook; a validation error first.
            page.get_by_role("link", name="New webhook").first.click()
            page.get_by_label("URL").fill("ftp://nowhere")
            page.get_by_role("button", name="Create webhook").click()
            expect(page.locator("#url-error")).to_be_visible()
            expect(page.locator("#events-error")).to_contain_text("At least one event type is required")
            page.get_by_label("URL").fill(hook)
            page.get_by_label("threat.detected", exact=True).check()
            page.get_by_label("server.blocked", exact=True).check()
            page.get_by_label("Description").fill("On-call security alerts")
            page.get_by_role("button", name="Create webhook").click()

            # The secret, once, with a working copy button.
            expect(page.get_by_text("It will not be shown again.")).to_be_visible()
            secret = page.locator("#signing-secret").input_value()
            assert secret.startswith("whsec_")
            assert secret not in page.url
            page.get_by_role("button", name="Copy").click()
            expect(page.get_by_role("button", name="Copied")).to_be_visible()
            assert page.evaluate("navigator.clipboard.readText()") == secret
            webhook_page = page.url
            assert re.search(r"/webhooks/whk_\w+$", webhook_page)
            page.reload()
            assert secret not in page.content()
            expect(page.get_by_text("Hidden. Rotate it to get a new one.")).to_be_visible()

            # A test event, delivered by the worker, shows up as succeeded.
            page.get_by_role("button", name="Send test event").click()
            expect(page.get_by_text("queued as delivery")).to_be_visible()
            reload_until(page, "#history .badge-succeeded", 1)
            received = receiver.wait_for(1, "/dashboard-hook")[0]
            assert received.headers["X-CyberCage-Event"] == "test.ping"
            expected = "sha256=" + hmac.new(secret.encode(), received.body, hashlib.sha256).hexdigest()
            assert received.headers["X-CyberCage-Signature"] == expected
            expect(page.locator(".stats .rate.rate-healthy").first).to_have_text("100%")
            expect(page.locator("svg.chart-svg")).to_have_count(2)
            expect(page.locator("svg.chart-svg rect.bar-succeeded")).to_have_count(2)

            # The delivery: its envelope and attempt; a retry adds a second attempt.
            page.locator("#history tbody a").first.click()
            expect(page.locator("pre.code").first).to_contain_text('"event": "test.ping"')
            expect(page.locator("#attempts tbody tr")).to_have_count(1)
            delivery_page = page.url
            page.get_by_role("button", name="Retry").click()
            expect(page.get_by_text("Retry queued")).to_be_visible()
            reload_until(page, "#attempts tbody tr", 2)
            expect(page.locator("#attempts tbody tr").nth(1)).to_contain_text("200")
            receiver.wait_for(2, "/dashboard-hook")

            # An event the receiver refuses ends up failed after its retries, and shows so.
            page.goto(webhook_page)
            page.locator("#test-event").select_option("policy.violation")
            page.get_by_role("button", name="Send test event").click()
            expect(page.get_by_text("Test event policy.violation queued")).to_be_visible()
            reload_until(page, "#history .badge-failed", 1)
            # Rates count attempts: 2 answered 200 (the ping and its retry), 6 answered 500 — red.
            expect(page.locator(".stats .rate.rate-failing").first).to_have_text("25%")
            expect(page.locator(".stats .rate.rate-failing").nth(1)).to_have_text("75%")
            expect(page.locator("svg.chart-svg rect.bar-failed")).to_have_count(2)
            page.locator("#id_status").select_option("failed")
            page.get_by_role("button", name="Filter").click()
            expect(page.locator("#history tbody tr")).to_have_count(1)
            expect(page.locator("#history tbody tr")).to_contain_text("policy.violation")

            # The webhook page as the README shows it.
            page.goto(webhook_page)
            expect(page.locator("#history tbody tr")).to_have_count(2)
            shot = SCREENSHOT if UPDATE_SCREENSHOT else Path(os.environ.get("TMPDIR", "/tmp")) / "webhook-page.png"
            shot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(shot), full_page=True)

            # Rotate, keeping the old secret: the page says when the switch happens, and the
            # receiver still gets X-CyberCage-Signature signed with the old secret meanwhile.
            def test_event_is_signed_with(expected: str) -> None:
                before = len(receiver.received("/dashboard-hook"))
                page.locator("#test-event").select_option("agent.online")
                page.get_by_role("button", name="Send test event").click()
                expect(page.get_by_text("Test event agent.online queued")).to_be_visible()
                sent = receiver.wait_for(before + 1, "/dashboard-hook")[-1]
                signature = "sha256=" + hmac.new(expected.encode(), sent.body, hashlib.sha256).hexdigest()
                assert sent.headers["X-CyberCage-Signature"] == signature

            page.get_by_role("link", name="Rotate secret").click()
            page.get_by_role("button", name="Rotate, keep the old secret for 24 hours").click()
            expect(page.get_by_text("It will not be shown again.")).to_be_visible()
            new_secret = page.locator("#signing-secret").input_value()
            assert new_secret.startswith("whsec_")
            assert new_secret != secret
            expect(page.locator("#secret-switch")).to_contain_text("Rotation under way: until")
            test_event_is_signed_with(secret)
            # The early end: the new secret signs everything from now on.
            page.get_by_role("button", name="Stop using the old secret now", exact=True).click()
            expect(page.get_by_text("The old secret no longer signs")).to_be_visible()
            expect(page.locator("#secret-switch")).to_have_count(0)
            test_event_is_signed_with(new_secret)

            # A 1 MB payload with a 270-character command: sent whole, shown cut short with a
            # link to the exact bytes, and the pages no wider than the window at 1,280 and 390 px.
            emitted = page.request.post(
                base + "/ui/api/events",
                data=json.dumps({"event": "threat.detected", "data": LONG_PAYLOAD_DATA}),
                headers={"Authorization": f"Bearer {acme.key}", "Content-Type": "application/json"},
            )
            assert emitted.status == 202, emitted.text()
            sent = wait_until(
                lambda: [
                    r
                    for r in receiver.received("/dashboard-hook")
                    if r.headers["X-CyberCage-Event"] == "threat.detected"
                ],
                timeout=DELIVERY_TIMEOUT,
                message="the 1 MB delivery did not arrive",
            )[0]
            assert len(sent.body) > 1_000_000
            page.goto(webhook_page)
            reload_until(page, "#history .badge-succeeded", 2)
            page.locator("#history tbody a").first.click()  # the newest: the long one
            expect(page.locator("#payload-truncated")).to_contain_text("only its first 64.0 KB are shown")
            assert_no_wider_than_window(page)
            with page.expect_response(re.compile(r"/payload$")) as exact:
                page.locator("#raw-payload").click()
            assert exact.value.headers["content-type"] == "application/json"
            assert exact.value.body() == sent.body  # byte for byte what was signed and sent
            page.go_back()
            page.set_viewport_size(PHONE)
            page.reload()
            assert_no_wider_than_window(page)
            box = page.locator("pre.payload-code")
            assert box.evaluate("e => e.scrollHeight > e.clientHeight")  # it scrolls inside itself
            page.screenshot(path=str(Path(os.environ.get("TMPDIR", "/tmp")) / "long-delivery-390.png"), full_page=True)
            page.goto(base + WEBHOOKS)
            assert_no_wider_than_window(page)
            url_cell = page.get_by_role("link", name=hook)
            assert url_cell.bounding_box()["width"] > PHONE["width"] / 2  # a URL column, not 3 characters
            brand = page.locator("header .brand")
            expect(brand).to_be_visible()
            assert brand.evaluate(
                "e => { const r = e.getBoundingClientRect(), bar = e.parentElement.getBoundingClientRect();"
                " return r.left >= bar.left && r.right <= bar.right && r.right <= window.innerWidth"
                " && e.scrollWidth <= e.clientWidth + 1; }"
            ), "the logo is clipped"
            page.set_viewport_size(DESKTOP)
            icon = page.locator("link[rel=icon]").get_attribute("href")
            favicon = page.request.get(base + icon)
            assert (favicon.status, favicon.headers["content-type"]) == (200, "image/svg+xml")
            page.goto(webhook_page)

            # Disable it.
            page.get_by_role("button", name="Disable").click()
            expect(page.locator(".meta .badge-disabled")).to_have_text("disabled")
            expect(page.get_by_role("button", name="Enable")).to_be_visible()
            expect(page.get_by_role("button", name="Send test event")).to_be_disabled()
            page.get_by_role("button", name="Log out").click()
            expect(page).to_have_url(base + "/ui/login")

            # Another organization's member sees none of it.
            other = context.browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
            watch(other, problems, expected_404)
            log_in(other, base, "bob@globex.example")
            expect(other.get_by_text("No webhooks yet")).to_be_visible()
            assert hook not in other.content()
            expected_404.update([webhook_page, delivery_page, webhook_page + "/edit"])
            for url in sorted(expected_404):
                response = other.goto(url)
                assert response is not None
                assert response.status == 404, url
                expect(other.get_by_text("There is no such webhook or delivery in your organization.")).to_be_visible()
                assert hook not in other.content()
        finally:
            browser.close()

    assert problems == []
    from deliveries.models import Delivery

    ping = Delivery.objects.get(webhook__organization=acme.organization, event_type="test.ping")
    assert ping.status == "succeeded"
    assert ping.attempts == 2
    assert not ping.webhook.enabled
    refused = Delivery.objects.get(webhook__organization=acme.organization, event_type="policy.violation")
    assert refused.status == "failed"
