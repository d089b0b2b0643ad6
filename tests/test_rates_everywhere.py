"""One definition of the rates and of their colours (deliveries.rates), wherever a rate is
shown: the dashboard's webhook list and webhook page, the admin's webhook list, the API's
stats and /metrics agree on each webhook's success rate and its grade — green (healthy) from
99 %, amber (degraded) below, red (failing) under 90 % — counted over attempts."""

from __future__ import annotations

import re

import pytest
from conftest import api_client, create_member, make_delivery, make_webhook
from django.contrib.auth import get_user_model
from django.test import Client

pytestmark = pytest.mark.django_db

OK = (200, "ok", "")
BOOM = (500, "boom", "HTTP 500")
# (attempts logged per delivery, ...) → the webhook's success rate, as pages show it, and its grade.
HISTORIES = {
    "healthy": ([[OK]] * 3, "100%", 1.0),
    "degraded": ([[OK]] * 18 + [[BOOM, OK]], "95%", 0.95),  # 19 of 20 attempts
    "failing": ([[OK]] * 7 + [[BOOM, BOOM, BOOM]], "70%", 0.7),  # 7 of 10; no delivery failed yet
}


@pytest.fixture
def graded(tenant) -> dict[str, str]:
    """A webhook of each grade; their ids by grade."""
    ids = {}
    for grade, (logs, _, _) in HISTORIES.items():
        webhook = make_webhook(tenant.organization, f"https://example.com/{grade}").webhook
        for log in logs:
            make_delivery(webhook, status="succeeded" if log[-1] == OK else "retrying", attempt_log=log)
        ids[grade] = webhook.id
    return ids


def test_every_page_and_the_api_show_the_same_rate_and_colour_when_webhooks_differ(tenant, graded):
    member = Client()
    member.force_login(create_member(tenant.organization, "alice@acme.example"))
    operator = Client()
    operator.force_login(get_user_model().objects.create_superuser("ops", "ops@example.com", "a-long-password-1"))
    dashboard_list = member.get("/ui/settings/integrations/webhooks").content.decode()
    admin_list = operator.get("/admin/webhooks/webhook/").content.decode()
    api = api_client(tenant.key)

    for grade, (_, shown, rate) in HISTORIES.items():
        webhook_id = graded[grade]
        page = member.get(f"/ui/settings/integrations/webhooks/{webhook_id}").content.decode()
        day = page.split('aria-label="Last 7 days"')[0]
        assert f'<span class="rate rate-{grade}">{shown}</span>' in day, grade
        row = re.search(rf'href="[^"]*/{webhook_id}".*?</tr>', dashboard_list, re.S).group(0)
        assert f'<span class="rate-text rate-{grade}">{shown}</span>' in row, grade
        admin_row = re.search(rf"{webhook_id}.*?</tr>", admin_list, re.S).group(0)
        assert re.search(rf'<span class="rate-{grade}" title="[^"]+">{shown}</span>', admin_row), grade
        stats = api.get(f"/ui/api/webhooks/{webhook_id}/stats").json()
        assert (stats["success_rate"], stats["health"]) == (rate, grade)


def test_metrics_count_webhooks_by_the_same_grades(client, settings, graded, redis_client):
    settings.METRICS_PUBLIC = True

    text = client.get("/metrics").content.decode()

    for grade in HISTORIES:
        assert f'webhook_endpoints_by_health_last_24h{{health="{grade}"}} 1\n' in text
    assert "webhook_attempt_success_ratio_last_24h 0.8787\n" in text  # 29 of 33 attempts, rounded down
