"""The webhook form's filter in headless Chromium: an example button fills the box, "Try it"
answers against the sample, Enter in a field still saves (not an example button), and the saved
filter is shown on the webhook's page. No script is involved: the buttons are plain submits."""

from __future__ import annotations

import json
import re

import pytest
from conftest import create_member, make_tenant
from playwright.sync_api import expect, sync_playwright

from tests.dashboard.test_dashboard_browser import CHROMIUM, CHROMIUM_ARGS, DESKTOP, WEBHOOKS, log_in, watch
from webhooks.models import Webhook

pytestmark = pytest.mark.e2e


@pytest.mark.django_db(transaction=True)
def test_filter_examples_try_it_and_enter_saves_in_a_browser(live_server):
    tenant = make_tenant("Filters in a browser")
    create_member(tenant.organization, "carol@filters.example")
    base = live_server.url
    problems: list[str] = []

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport=DESKTOP).new_page()
            watch(page, problems, set())
            log_in(page, base, "carol@filters.example")
            page.goto(base + WEBHOOKS + "/new")
            page.get_by_label("URL").fill("http://127.0.0.1:9/hook")
            page.get_by_label("threat.detected", exact=True).check()

            page.get_by_role("button", name="Only critical threats (PagerDuty)").click()
            box = page.locator("textarea[name=filter]")
            assert json.loads(box.input_value()) == {"event": "threat.detected", "data.severity": "critical"}
            expect(page.get_by_label("URL")).to_have_value("http://127.0.0.1:9/hook")

            page.get_by_role("button", name="Try it").click()
            expect(page.locator("#try-result")).to_contain_text("No match")
            box.fill('{"data.severity": {"$in": ["high", "critical"]}}')
            page.get_by_role("button", name="Try it").click()
            expect(page.locator("#try-result")).to_contain_text("Matches")

            page.get_by_label("URL").press("Enter")
            expect(page).to_have_url(re.compile(r"/webhooks/whk_\w+$"))
            expect(page.locator("#filter-settings")).to_contain_text('"$in"')
        finally:
            browser.close()
    assert problems == []
    # One webhook (the examples and "Try it" saved nothing), saved by Enter with what was typed.
    webhook = Webhook.objects.get()
    assert webhook.filter == {"data.severity": {"$in": ["high", "critical"]}}
    assert webhook.events == ["threat.detected"]
