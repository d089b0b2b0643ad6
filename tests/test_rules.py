"""One definition per rule: the API, the dashboard's form and the model apply the same page limit
and the same URL length, each read from one constant."""

from __future__ import annotations

import pytest
from conftest import make_webhook

from dashboard.forms import WebhookEditForm
from webhooks.destinations import MAX_URL_LENGTH
from webhooks.models import Webhook
from webhooks.serializers import WebhookWriteSerializer
from webhooks_project.pagination import MAX_PAGE_SIZE

pytestmark = pytest.mark.django_db

PUBLIC_PREFIX = "https://93.184.216.34/"


def _lists(webhook_id: str) -> list[str]:
    return ["/ui/api/webhooks", f"/ui/api/webhooks/{webhook_id}/deliveries"]


def test_page_limit_is_max_page_size_when_listing_webhooks_or_deliveries(api, tenant):
    webhook = make_webhook(tenant.organization, PUBLIC_PREFIX + "hook").webhook

    for url in _lists(webhook.id):
        assert api.get(url, {"limit": MAX_PAGE_SIZE}).status_code == 200, url
        refused = api.get(url, {"limit": MAX_PAGE_SIZE + 1})
        assert refused.status_code == 400, url
        assert "limit" in refused.json()["fields"], url


def test_url_length_is_max_url_length_when_read_by_model_api_and_form():
    assert Webhook._meta.get_field("url").max_length == MAX_URL_LENGTH
    assert WebhookWriteSerializer().fields["url"].max_length == MAX_URL_LENGTH
    assert WebhookEditForm().fields["url"].max_length == MAX_URL_LENGTH


def test_url_one_over_max_url_length_is_refused_when_posted_to_the_api(api):
    too_long = PUBLIC_PREFIX + "a" * (MAX_URL_LENGTH + 1 - len(PUBLIC_PREFIX))

    response = api.post("/ui/api/webhooks", {"url": too_long, "events": ["*"]}, format="json")

    assert response.status_code == 400
    assert "url" in response.json()["fields"]
