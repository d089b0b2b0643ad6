"""The operators' admin, with DEBUG off as in production: keys shown once, webhook health and
actions, delivery history with attempts and retry, event search; never a secret on any page."""

from __future__ import annotations

import re

import pytest
from conftest import api_client, make_webhook
from django.contrib.auth import get_user_model
from django.contrib.messages import get_messages
from django.contrib.sessions.models import Session
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from deliveries.models import Attempt, Delivery
from deliveries.services import delivery_send_test
from events.models import Event
from webhooks import crypto
from webhooks.models import ApiKey, Webhook
from webhooks.signing_keys import SigningSecrets

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator() -> Client:
    user = get_user_model().objects.create_superuser("ops", "ops@example.com", "a-long-password-1")
    client = Client()
    client.force_login(user)
    return client


def messages_of(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def run_action(operator: Client, model: str, action: str, ids: list[str]):
    return operator.post(f"/admin/{model}/", {"action": action, "_selected_action": ids, "index": "0"}, follow=True)


def add_attempted_delivery(webhook: Webhook, *, status: str, http: int | None, duration_ms: int = 40) -> Delivery:
    delivery = delivery_send_test(webhook=webhook, event_type="test.ping")
    now = timezone.now()
    Delivery.objects.filter(id=delivery.id).update(
        status=status, attempts=1, response_status=http, last_attempt_at=now, next_attempt_at=None
    )
    Attempt.objects.create(
        delivery=delivery, number=1, requested_at=now, response_status=http, duration_ms=duration_ms,
        error="" if http else "connection refused", response_body="receiver said no" if http != 200 else "ok",
    )  # fmt: skip
    delivery.refresh_from_db()
    return delivery


def test_admin_serves_pages_and_static_files_when_debug_is_off(operator, settings):
    assert settings.DEBUG is False

    index = operator.get("/admin/")
    css = operator.get("/static/admin/css/base.css")

    assert index.status_code == 200
    assert b"Organizations and webhooks" in index.content
    assert css.status_code == 200
    assert b"".join(css.streaming_content if css.streaming else [css.content])


def test_api_key_added_in_admin_is_shown_once_on_its_page_and_never_in_a_cookie(operator, tenant):
    added = operator.post("/admin/webhooks/apikey/add/", {"organization": tenant.organization.id, "name": "ci"})

    api_key = ApiKey.objects.get(name="ci")
    assert added.status_code == 302
    assert added["Location"] == f"/admin/webhooks/apikey/{api_key.id}/change/"
    page = operator.get(added["Location"])
    assert page.status_code == 200
    key = re.search(r"<code>(cck_[0-9a-f]{8}_[^<\s]+)</code>", page.content.decode()).group(1)
    assert key.startswith(api_key.prefix)
    assert "shown only this once" in page.content.decode()
    assert api_client(key).get("/ui/api/webhooks").status_code == 200
    # Never in a cookie (messages travel in one), in a message, or in the session's row as is.
    for response in (added, page):
        assert all(key not in morsel.value for morsel in response.cookies.values())
    assert all(key not in cookie.value for cookie in operator.cookies.values())
    assert not any(key in m for m in messages_of(page))
    assert not any(key in s.session_data for s in Session.objects.all())
    assert key not in str(operator.session.items())
    # Only a hash is stored, and no later page shows the key.
    assert key not in operator.get(f"/admin/webhooks/apikey/{api_key.id}/change/").content.decode()
    listing = operator.get("/admin/webhooks/apikey/").content.decode()
    assert api_key.prefix in listing
    assert key not in listing


def test_api_key_is_not_revealed_on_another_keys_page(operator, tenant):
    operator.post("/admin/webhooks/apikey/add/", {"organization": tenant.organization.id, "name": "ci"})
    added = ApiKey.objects.get(name="ci")
    other = ApiKey.objects.exclude(name="ci").get()

    elsewhere = operator.get(f"/admin/webhooks/apikey/{other.id}/change/").content.decode()
    own = operator.get(f"/admin/webhooks/apikey/{added.id}/change/").content.decode()

    # The next page was another key's: the new key is not shown there, nor afterwards.
    assert 'id="new-api-key"' not in elsewhere
    assert 'id="new-api-key"' not in own


def test_api_key_revoke_action_stops_the_key(operator, tenant):
    api_key = ApiKey.objects.get(organization=tenant.organization)

    response = run_action(operator, "webhooks/apikey", "revoke", [api_key.id])

    assert "Revoked 1 API key(s)." in messages_of(response)
    api_key.refresh_from_db()
    assert api_key.revoked_at is not None
    assert api_client(tenant.key).get("/ui/api/webhooks").status_code == 401


def test_webhook_list_shows_health_and_never_a_secret(operator, tenant):
    created = make_webhook(tenant.organization, "https://example.com/hook", events=["threat.detected"])
    webhook = created.webhook
    add_attempted_delivery(webhook, status="succeeded", http=200)
    add_attempted_delivery(webhook, status="succeeded", http=200)
    add_attempted_delivery(webhook, status="succeeded", http=200)
    add_attempted_delivery(webhook, status="failed", http=500)

    listing = operator.get("/admin/webhooks/webhook/").content.decode()
    detail = operator.get(f"/admin/webhooks/webhook/{webhook.id}/change/").content.decode()

    assert "https://example.com/hook" in listing
    assert "threat.detected" in listing
    # 3 of 4 attempts in 24 h succeeded: red, as on the dashboard (deliveries.rates).
    assert '<span class="rate-failing" title="under 90 % of attempts succeeded">75%</span>' in listing
    assert 'class="field-last_delivery_status">failed<' in listing
    for page in (listing, detail):
        assert created.secret not in page
        assert webhook.secret_encrypted not in page
        assert "secret_encrypted" not in page


def test_webhook_actions_disable_enable_send_test_and_rotate(operator, tenant):
    created = make_webhook(tenant.organization, "https://example.com/hook")
    webhook = created.webhook

    disabled = run_action(operator, "webhooks/webhook", "disable", [webhook.id])
    webhook.refresh_from_db()
    assert webhook.enabled is False
    assert webhook.disabled_reason == Webhook.DisabledReason.OPERATOR
    assert "Disabled 1 webhook(s)." in messages_of(disabled)

    enabled = run_action(operator, "webhooks/webhook", "enable", [webhook.id])
    webhook.refresh_from_db()
    assert webhook.enabled is True
    assert webhook.disabled_reason == ""
    assert "Enabled 1 webhook(s)." in messages_of(enabled)

    sent = run_action(operator, "webhooks/webhook", "send_test_event", [webhook.id])
    delivery = Delivery.objects.get(webhook=webhook)
    assert delivery.event_type == "test.ping"
    assert delivery.status == "pending"
    assert f"Test event queued: delivery {delivery.id}." in messages_of(sent)

    rotated = run_action(operator, "webhooks/webhook", "rotate_secret", [webhook.id])
    webhook.refresh_from_db()
    new_secret = crypto.decrypt(webhook.secret_encrypted)
    assert new_secret != created.secret
    assert webhook.signing_secrets() == SigningSecrets(documented=created.secret, standard=(new_secret, created.secret))
    page = rotated.content.decode()
    assert new_secret not in page
    assert any("Rotated the signing secret of 1 webhook(s)" in m for m in messages_of(rotated))
    assert not any(new_secret in m for m in messages_of(rotated))


def test_webhook_edit_in_admin_disables_with_the_operators_reason(operator, tenant):
    webhook = make_webhook(tenant.organization, "https://example.com/hook").webhook

    response = operator.post(f"/admin/webhooks/webhook/{webhook.id}/change/", {"description": ""}, follow=True)

    assert response.status_code == 200
    webhook.refresh_from_db()
    assert (webhook.enabled, webhook.disabled_reason) == (False, Webhook.DisabledReason.OPERATOR)
    assert webhook.disabled_reason_text == "disabled by an operator"


def test_webhook_edit_in_admin_reenables_and_clears_the_reason(operator, tenant):
    webhook = make_webhook(tenant.organization, "https://example.com/hook").webhook
    Webhook.objects.filter(id=webhook.id).update(enabled=False, disabled_reason=Webhook.DisabledReason.GONE)

    response = operator.post(
        f"/admin/webhooks/webhook/{webhook.id}/change/", {"description": "ops note", "enabled": "on"}, follow=True
    )

    assert response.status_code == 200
    webhook.refresh_from_db()
    assert webhook.enabled is True
    assert webhook.disabled_reason == ""
    assert webhook.description == "ops note"
    assert webhook.url == "https://example.com/hook"


def test_webhook_filter_in_admin_is_checked_compiled_and_cleared(operator, tenant):
    webhook = make_webhook(tenant.organization, "https://example.com/hook").webhook
    change = f"/admin/webhooks/webhook/{webhook.id}/change/"

    refused = operator.post(change, {"enabled": "on", "filter": '{"data.severity": {"$in": "critical"}}'})
    assert refused.status_code == 200
    assert "data.severity.$in: expected a list" in refused.content.decode()
    webhook.refresh_from_db()
    assert webhook.filter is None

    operator.post(change, {"enabled": "on", "filter": '{"data.severity": "critical"}'}, follow=True)
    webhook.refresh_from_db()
    assert webhook.filter == {"data.severity": "critical"}
    assert webhook.filter_path is not None
    page = operator.get(change).content.decode()
    assert "compiled filter (jsonpath)" in page.lower()
    assert "strict" in page
    assert "(filtered)" in operator.get("/admin/webhooks/webhook/").content.decode()

    operator.post(change, {"enabled": "on", "filter": "null"}, follow=True)
    webhook.refresh_from_db()
    assert (webhook.filter, webhook.filter_path) == (None, None)


def test_delivery_list_filters_by_status_event_type_webhook_and_organization(operator, tenant, other_tenant):
    mine = make_webhook(tenant.organization, "https://example.com/a").webhook
    theirs = make_webhook(other_tenant.organization, "https://example.com/b").webhook
    failed = add_attempted_delivery(mine, status="failed", http=500)
    succeeded = add_attempted_delivery(mine, status="succeeded", http=200)
    elsewhere = add_attempted_delivery(theirs, status="failed", http=500)

    def listed(query: str) -> set[str]:
        page = operator.get(f"/admin/deliveries/delivery/?{query}")
        assert page.status_code == 200
        ids = {d.id for d in (failed, succeeded, elsewhere)}
        return {i for i in ids if i in page.content.decode()}

    assert listed("status__exact=failed") == {failed.id, elsewhere.id}
    assert listed(f"webhook={mine.id}") == {failed.id, succeeded.id}
    assert listed(f"organization={other_tenant.organization.id}") == {elsewhere.id}
    assert listed(f"organization={tenant.organization.id}&status__exact=succeeded") == {succeeded.id}
    assert listed("event_type=test.ping") == {failed.id, succeeded.id, elsewhere.id}
    assert listed("event_type=threat.detected") == set()
    assert listed(f"q={failed.event_id}") == {failed.id}


def test_delivery_detail_shows_attempts_read_only(operator, tenant):
    webhook = make_webhook(tenant.organization, "https://example.com/a").webhook
    delivery = add_attempted_delivery(webhook, status="failed", http=503)

    page = operator.get(f"/admin/deliveries/delivery/{delivery.id}/change/").content.decode()

    assert "receiver said no" in page  # the attempt's response body
    assert "503" in page
    assert "&quot;event&quot;: &quot;test.ping&quot;" in page  # the payload, indented
    assert 'name="attempt_log-0-duration_ms"' not in page  # read-only, no inputs


def test_admin_offers_no_delete_for_tables_that_grow(operator, tenant):
    webhook = make_webhook(tenant.organization, "https://example.com/a").webhook
    delivery = add_attempted_delivery(webhook, status="failed", http=500)

    # A delete page lists every related row: history goes by retention, endpoints are disabled.
    for path in (
        f"/admin/deliveries/delivery/{delivery.id}/delete/",
        f"/admin/events/event/{delivery.event_id}/delete/",
        f"/admin/webhooks/webhook/{webhook.id}/delete/",
        f"/admin/webhooks/organization/{tenant.organization.id}/delete/",
    ):
        assert operator.get(path).status_code == 403, path
    assert Delivery.objects.filter(id=delivery.id).exists()


def test_delivery_retry_now_action_makes_it_due_again(operator, tenant):
    webhook = make_webhook(tenant.organization, "https://example.com/a").webhook
    delivery = add_attempted_delivery(webhook, status="failed", http=500)

    response = run_action(operator, "deliveries/delivery", "retry_now", [delivery.id])

    delivery.refresh_from_db()
    assert delivery.status == "retrying"
    assert delivery.next_attempt_at is not None
    assert delivery.next_attempt_at <= timezone.now()
    assert "Retrying 1 delivery(ies) now." in messages_of(response)


def test_delivery_retry_now_action_refuses_a_disabled_webhooks_deliveries_and_says_why(operator, tenant):
    webhook = make_webhook(tenant.organization, "https://example.com/a").webhook
    delivery = add_attempted_delivery(webhook, status="failed", http=500)
    Webhook.objects.filter(id=webhook.id).update(enabled=False, disabled_reason=Webhook.DisabledReason.OPERATOR)

    response = run_action(operator, "deliveries/delivery", "retry_now", [delivery.id])

    delivery.refresh_from_db()
    assert (delivery.status, delivery.next_attempt_at) == ("failed", None)
    assert messages_of(response) == [
        "Retrying 0 delivery(ies) now.",
        f"Not retried: {delivery.id}. Webhook {webhook.id} is disabled (disabled by an operator). "
        "Enable it first, then retry. Nothing was queued.",
    ]


def test_send_test_event_action_refuses_a_disabled_webhook_and_says_why(operator, tenant):
    webhook = make_webhook(tenant.organization, "https://example.com/a").webhook
    Webhook.objects.filter(id=webhook.id).update(enabled=False, disabled_reason=Webhook.DisabledReason.GONE)

    response = run_action(operator, "webhooks/webhook", "send_test_event", [webhook.id])

    assert not Delivery.objects.exists()
    assert messages_of(response) == [
        f"Webhook {webhook.id} is disabled (receiver answered 410 Gone). Enable it first, then send a test event. "
        "Nothing was queued."
    ]


def test_delivery_list_query_count_does_not_grow_with_rows(operator, tenant, django_assert_max_num_queries):
    webhook = make_webhook(tenant.organization, "https://example.com/a").webhook
    add_attempted_delivery(webhook, status="failed", http=500)
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as few:
        operator.get("/admin/deliveries/delivery/")
    for _ in range(15):
        add_attempted_delivery(webhook, status="succeeded", http=200)

    with django_assert_max_num_queries(len(few.captured_queries)):
        page = operator.get("/admin/deliveries/delivery/")
    assert page.status_code == 200


def test_webhook_list_reads_the_same_queries_when_3_or_30_webhooks(operator, tenant, django_assert_num_queries):
    def add_webhooks(count: int) -> None:
        for _ in range(count):
            webhook = make_webhook(tenant.organization, "https://example.com/hook").webhook
            add_attempted_delivery(webhook, status="succeeded", http=200)
            add_attempted_delivery(webhook, status="failed", http=500)

    add_webhooks(3)
    operator.get("/admin/webhooks/webhook/")  # caches filled by a first request are not the rows' cost
    with CaptureQueriesContext(connection) as three:
        assert operator.get("/admin/webhooks/webhook/").status_code == 200
    add_webhooks(27)

    with django_assert_num_queries(len(three.captured_queries)):
        page = operator.get("/admin/webhooks/webhook/")

    body = page.content.decode()
    assert body.count('class="field-success_rate_24h"><span class="rate-failing"') == 30  # every row, its own health
    assert body.count(">50%</span>") == 30
    assert body.count('class="field-last_delivery_status">failed<') == 30


def test_event_search_finds_by_id_type_and_organization(operator, tenant, other_tenant):
    mine = make_webhook(tenant.organization, "https://example.com/a").webhook
    theirs = make_webhook(other_tenant.organization, "https://example.com/b").webhook
    ping = delivery_send_test(webhook=mine, event_type="test.ping").event_id
    threat = delivery_send_test(webhook=theirs, event_type="threat.detected").event_id

    def found(query: str) -> set[str]:
        page = operator.get("/admin/events/event/", {"q": query}).content.decode()
        return {e for e in (ping, threat) if e in page}

    assert found(ping) == {ping}
    assert found("threat.detected") == {threat}
    assert found(other_tenant.organization.id) == {threat}
    detail = operator.get(f"/admin/events/event/{threat}/change/")
    assert detail.status_code == 200
    assert "data_exfiltration" in detail.content.decode()
    assert Event.objects.count() == 2


def test_admin_pages_need_no_inline_script_or_style_when_under_the_content_security_policy(operator, tenant):
    """The policy forbids inline scripts and style attributes; no admin page relies on one."""
    from webhooks_project.middleware import CONTENT_SECURITY_POLICY

    webhook = make_webhook(tenant.organization, "https://example.com/hook").webhook
    delivery = add_attempted_delivery(webhook, status="failed", http=500)
    api_key = ApiKey.objects.get(organization=tenant.organization)
    pages = [
        "/admin/",
        "/admin/webhooks/organization/",
        f"/admin/webhooks/organization/{tenant.organization.id}/change/",
        "/admin/webhooks/apikey/",
        "/admin/webhooks/apikey/add/",
        f"/admin/webhooks/apikey/{api_key.id}/change/",
        f"/admin/webhooks/webhook/?organization={tenant.organization.id}",
        f"/admin/webhooks/webhook/{webhook.id}/change/",
        "/admin/events/event/",
        f"/admin/deliveries/delivery/?webhook={webhook.id}",
        f"/admin/deliveries/delivery/{delivery.id}/change/",
    ]
    for url in pages:
        response = operator.get(url)
        page = response.content.decode()
        assert response.status_code == 200, url
        assert response["Content-Security-Policy"] == CONTENT_SECURITY_POLICY, url
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page), url
        assert not re.search(r"\sstyle=", page), url
        assert not re.search(r"\son[a-z]+=", page), url  # no inline event handlers either
