"""The webhooks list costs the same queries for 3 webhooks or 30 (a full page and more): every
row's health is read for the page at once."""

from __future__ import annotations

import pytest
from conftest import make_delivery, make_webhook
from django.db import connection
from django.test.utils import CaptureQueriesContext

pytestmark = pytest.mark.django_db

LIST = "/ui/settings/integrations/webhooks"


def add_webhooks_with_history(organization, count: int) -> None:
    for _ in range(count):
        webhook = make_webhook(organization, "https://example.com/hook").webhook
        make_delivery(webhook, status="succeeded", attempt_log=[(200, "ok", "")])
        make_delivery(webhook, status="failed", attempt_log=[(500, "boom", "HTTP 500")])


def test_webhook_list_reads_the_same_queries_when_3_or_30_webhooks(ui, tenant, django_assert_num_queries):
    add_webhooks_with_history(tenant.organization, 3)
    ui.get(LIST)  # caches filled by a first request are not the rows' cost
    with CaptureQueriesContext(connection) as three:
        assert ui.get(LIST).status_code == 200
    add_webhooks_with_history(tenant.organization, 27)

    with django_assert_num_queries(len(three.captured_queries)):
        page = ui.get(LIST)

    body = page.content.decode()
    assert body.count("50%") == 25  # a full page, each row with its own health
    assert body.count('badge-failed">failed<') == 25
