"""The admin under its Content-Security-Policy, in headless Chromium: an operator adds an API
key and sees it once, filters and opens webhooks and deliveries, and the browser reports no
policy violation, script error or failed request on the way."""

from __future__ import annotations

import re

import pytest
from conftest import make_tenant, make_webhook
from django.contrib.auth import get_user_model
from playwright.sync_api import expect, sync_playwright

from deliveries.services import delivery_send_test
from tests.dashboard.test_dashboard_browser import CHROMIUM, CHROMIUM_ARGS, watch

pytestmark = pytest.mark.e2e

PASSWORD = "a-long-password-1"


@pytest.mark.django_db(transaction=True)
def test_admin_works_in_a_browser_when_its_content_security_policy_is_enforced(live_server):
    tenant = make_tenant("Acme")
    webhook = make_webhook(tenant.organization, "https://example.com/hook").webhook
    delivery = delivery_send_test(webhook=webhook, event_type="test.ping")
    get_user_model().objects.create_superuser("ops", "ops@example.com", PASSWORD)
    base = live_server.url
    problems: list[str] = []

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            watch(page, problems, set())
            page.goto(base + "/admin/")
            page.get_by_label("Username").fill("ops")
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Log in").click()
            expect(page).to_have_url(base + "/admin/")

            # A new API key: shown once, on its own page.
            page.goto(base + "/admin/webhooks/apikey/add/")
            page.locator("#id_organization").fill(tenant.organization.id)
            page.get_by_label("Name").fill("ci")
            page.get_by_role("button", name="Save", exact=True).click()
            expect(page.locator("#new-api-key")).to_contain_text("shown only this once")
            key = page.locator("#new-api-key code").inner_text()
            assert re.fullmatch(r"cck_[0-9a-f]{8}_\S+", key)
            page.reload()
            expect(page.locator("#new-api-key")).to_have_count(0)

            # The id filter (its stylesheet is a file now) and the pages behind it.
            page.goto(base + "/admin/webhooks/webhook/")
            page.get_by_placeholder("org_…").fill(tenant.organization.id)
            page.get_by_placeholder("org_…").press("Enter")
            expect(page.locator("#result_list")).to_contain_text("https://example.com/hook")
            padding = page.locator("form.id-filter").evaluate("e => getComputedStyle(e).paddingLeft")
            assert padding == "15px"
            page.goto(f"{base}/admin/webhooks/webhook/{webhook.id}/change/")
            page.goto(f"{base}/admin/deliveries/delivery/{delivery.id}/change/")
            expect(page.locator("body")).to_contain_text(delivery.id)

            # The delivery list fits a 1,280 px window: no sideways scrolling, of the page or the table.
            page.goto(base + "/admin/deliveries/delivery/")
            expect(page.locator("#result_list")).to_contain_text(delivery.id)
            expect(page.locator("#result_list")).to_contain_text(webhook.id)
            assert page.evaluate("document.documentElement.scrollWidth") <= 1280
            assert page.locator("#changelist .results").evaluate("e => e.scrollWidth <= e.clientWidth")

            # A favicon, as on the dashboard (and no request for /favicon.ico failed on the way).
            icon = page.locator("link[rel=icon]").get_attribute("href")
            assert page.request.get(base + icon).headers["content-type"] == "image/svg+xml"
        finally:
            browser.close()

    assert problems == []
