"""The webhook form's filter through Django's test client: saved and cleared, errors in the API's
words next to the box, the two ready-made examples, and "Try it" against a type's sample."""

from __future__ import annotations

import html
import json
import re

from conftest import make_webhook

from webhooks.filters import EXAMPLES
from webhooks.models import Webhook

NEW = "/ui/settings/integrations/webhooks/new"
RECEIVER = "http://127.0.0.1:9/hook"
CRITICAL = {"data.severity": "critical"}


def _edit(webhook) -> str:
    return f"/ui/settings/integrations/webhooks/{webhook.id}/edit"


def _box(body: str) -> str:
    found = re.search(r'<textarea name="filter"[^>]*>(.*?)</textarea>', body, re.S)
    assert found is not None
    return html.unescape(found.group(1)).strip()


def test_create_with_a_filter_saves_it_and_the_page_shows_it(ui, tenant):
    response = ui.post(NEW, {"url": RECEIVER, "events": ["*"], "enabled": "on", "filter": json.dumps(CRITICAL)})
    assert response.status_code == 302
    webhook = Webhook.objects.get(organization=tenant.organization)
    assert webhook.filter == CRITICAL
    assert webhook.filter_path is not None
    detail = ui.get(response["Location"]).content.decode()
    assert "data.severity" in html.unescape(detail)
    assert "0 events skipped by the filter" in detail


def test_bad_filter_shows_the_api_message_next_to_the_box_and_saves_nothing(ui, api, tenant):
    bad = {"data.severity": {"$in": "critical"}}
    body = ui.post(NEW, {"url": RECEIVER, "events": ["*"], "filter": json.dumps(bad)}).content.decode()
    shown = re.search(r'id="filter-error">([^<]*)<', body)
    assert shown is not None
    assert html.unescape(shown.group(1)) == "data.severity.$in: expected a list"
    api_message = api.post("/ui/api/webhooks", {"url": RECEIVER, "events": ["*"], "filter": bad}, format="json")
    assert api_message.json()["message"] == "filter." + html.unescape(shown.group(1))
    not_json = ui.post(NEW, {"url": RECEIVER, "events": ["*"], "filter": "{severity: critical"}).content.decode()
    assert 'id="filter-error">Not valid JSON' in not_json
    assert not Webhook.objects.exists()


def test_edit_shows_the_filter_and_an_empty_box_clears_it(ui, tenant):
    webhook = make_webhook(tenant.organization, RECEIVER, filter=CRITICAL).webhook
    assert json.loads(_box(ui.get(_edit(webhook)).content.decode())) == CRITICAL
    response = ui.post(_edit(webhook), {"url": RECEIVER, "events": ["*"], "enabled": "on", "filter": ""})
    assert response.status_code == 302
    webhook.refresh_from_db()
    assert webhook.filter is None
    assert webhook.filter_path is None


def test_example_buttons_fill_the_box_and_save_nothing(ui, tenant):
    body = ui.get(NEW).content.decode()
    labels = list(EXAMPLES)
    for label in labels:
        assert html.escape(label) in body
    for index, example in enumerate(EXAMPLES.values()):
        response = ui.post(NEW, {"url": RECEIVER, "events": ["threat.detected"], "example": str(index)})
        assert response.status_code == 200
        page = response.content.decode()
        assert json.loads(_box(page)) == example
        assert f'value="{RECEIVER}"' in page  # what was typed stays
        assert 'id="url-error"' not in page
    assert not Webhook.objects.exists()


def test_try_it_says_whether_the_sample_matches_and_saves_nothing(ui, tenant):
    webhook = make_webhook(tenant.organization, RECEIVER).webhook
    # threat.detected's sample is a "high" threat.
    high = {"url": RECEIVER, "events": ["*"], "try_event": "threat.detected", "try": "1"}
    matched = ui.post(_edit(webhook), {**high, "filter": json.dumps({"data.severity": {"$in": ["high", "critical"]}})})
    assert matched.status_code == 200
    assert (
        "<strong>Matches:</strong> a threat.detected event like this sample would be sent." in matched.content.decode()
    )
    skipped = ui.post(_edit(webhook), {**high, "filter": json.dumps(CRITICAL)}).content.decode()
    assert "<strong>No match:</strong> a threat.detected event like this sample would be skipped." in skipped
    assert "thr_xyz789" in skipped  # the sample it was tried on
    assert json.loads(_box(skipped)) == CRITICAL  # the box keeps what was typed
    blocked = ui.post(_edit(webhook), {**high, "try_event": "threat.blocked", "filter": json.dumps(CRITICAL)})
    assert "a threat.blocked event like this sample would be skipped" in blocked.content.decode()
    broken = ui.post(_edit(webhook), {**high, "filter": '{"data.severity": {"$gt": []}}'}).content.decode()
    assert "data.severity.$gt: expected a number or a string" in html.unescape(broken)
    webhook.refresh_from_db()
    assert webhook.filter is None
