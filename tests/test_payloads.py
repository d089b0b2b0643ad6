"""Long payloads never break a page (issue 13 §4): the exact body a delivery sent, byte for byte,
from the API (an API key), the dashboard (a member's session) and the admin (staff); delivery
pages show a formatted beginning of a long body, cut at WEBHOOK_PAYLOAD_PREVIEW_BYTES, with a
link to the rest. Another organization's delivery is a 404 on every route (the API's is in the
URLconf matrix of test_isolation.py as well)."""

from __future__ import annotations

import html
import json

import pytest
from conftest import api_client, create_member, make_webhook
from django.contrib.auth import get_user_model
from django.test import Client

from deliveries.models import Delivery
from events import services as events

pytestmark = pytest.mark.django_db

# What a body must keep exactly: non-ASCII as is, JavaScript's number format, a line separator.
TRICKY = {"threat_id": "thr_1", "severity": "high", "description": "Zoë’s 🔑 \u2028 done", "score": 1e21, "n": 0.1}
PAGE = "/ui/settings/integrations/webhooks/{webhook}/deliveries/{delivery}"


def emitted(tenant, data: dict, url: str = "https://example.com/hook") -> Delivery:
    webhook = make_webhook(tenant.organization, url, ["threat.detected"]).webhook
    events.emit(tenant.organization, "threat.detected", data)
    return Delivery.objects.select_related("event").get(webhook=webhook)


def member_of(tenant) -> Client:
    client = Client()
    client.force_login(create_member(tenant.organization, "alice@acme.example"))
    return client


def test_api_payload_is_the_signed_body_byte_for_byte_as_json(tenant):
    delivery = emitted(tenant, TRICKY)

    response = api_client(tenant.key).get(f"/ui/api/webhooks/{delivery.webhook_id}/deliveries/{delivery.id}/payload")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response["Content-Disposition"] == f'inline; filename="{delivery.id}.json"'
    assert response.content == delivery.event.payload.encode("utf-8")
    assert "Zoë’s 🔑 \u2028 done".encode() in response.content  # not escaped, not re-encoded
    assert b'"score":1e+21,"n":0.1' in response.content  # JavaScript's numbers, as signed
    assert json.loads(response.content)["data"] == TRICKY


def test_dashboard_payload_gives_a_member_the_same_bytes_and_others_nothing(tenant, other_tenant, client):
    delivery = emitted(tenant, TRICKY)
    path = PAGE.format(webhook=delivery.webhook_id, delivery=delivery.id) + "/payload"

    own = member_of(tenant).get(path)
    anonymous = client.get(path)
    stranger = Client()
    stranger.force_login(create_member(other_tenant.organization, "bob@globex.example"))
    theirs = stranger.get(path)

    assert own.status_code == 200
    assert own["Content-Type"] == "application/json"
    assert own.content == delivery.event.payload.encode("utf-8")
    assert anonymous.status_code == 302
    assert anonymous["Location"].startswith("/ui/login?next=")
    assert theirs.status_code == 404
    assert delivery.event.payload.encode() not in theirs.content


def test_delivery_page_shows_a_long_body_cut_short_with_a_link_to_all_of_it(tenant, settings):
    settings.WEBHOOK_PAYLOAD_PREVIEW_BYTES = 4096
    delivery = emitted(tenant, {"threat_id": "thr_1", "severity": "high", "description": "x" * 20_000 + "THE-END"})
    link = PAGE.format(webhook=delivery.webhook_id, delivery=delivery.id) + "/payload"

    page = member_of(tenant).get(PAGE.format(webhook=delivery.webhook_id, delivery=delivery.id)).content.decode()

    assert 'id="payload-truncated"' in page
    assert "only its first 4.0\xa0KB are shown" in page
    assert page.count(f'href="{link}"') == 2  # the button and the notice
    assert "THE-END" not in page
    shown = page.split('<pre class="code payload-code" tabindex="0">')[1].split("</pre>")[0]
    assert shown.endswith("\n…")
    assert len(html.unescape(shown).removesuffix("\n…").encode()) <= 4096


def test_delivery_page_shows_a_short_body_whole_with_the_same_link(tenant):
    delivery = emitted(tenant, TRICKY)
    link = PAGE.format(webhook=delivery.webhook_id, delivery=delivery.id) + "/payload"

    page = member_of(tenant).get(PAGE.format(webhook=delivery.webhook_id, delivery=delivery.id)).content.decode()

    assert 'id="payload-truncated"' not in page
    assert f'href="{link}"' in page
    assert "Zoë’s 🔑" in page


def test_admin_delivery_page_cuts_a_long_body_and_links_staff_to_the_exact_bytes(tenant, settings, client):
    settings.WEBHOOK_PAYLOAD_PREVIEW_BYTES = 4096
    delivery = emitted(tenant, {"threat_id": "thr_1", "severity": "high", "description": "x" * 20_000 + "THE-END"})
    operator = Client()
    operator.force_login(get_user_model().objects.create_superuser("ops", "ops@example.com", "a-long-password-1"))
    exact = f"/admin/deliveries/delivery/{delivery.id}/payload/"

    page = operator.get(f"/admin/deliveries/delivery/{delivery.id}/change/").content.decode()
    body = operator.get(exact)

    assert "Only the beginning is shown." in page
    assert f'href="{exact}"' in page
    assert "THE-END" not in page
    assert body.status_code == 200
    assert body.content == delivery.event.payload.encode("utf-8")
    assert client.get(exact).status_code == 302  # not signed in: the admin's login
    assert operator.get("/admin/deliveries/delivery/dlv_unknown/payload/").status_code == 404
