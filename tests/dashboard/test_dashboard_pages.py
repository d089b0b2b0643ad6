"""The dashboard's pages through Django's test client: access, forms, actions, isolation."""

from __future__ import annotations

import html
import re
from datetime import timedelta
from urllib.parse import quote

import pytest
from conftest import PASSWORD, make_delivery, make_webhook
from django.test import Client
from django.utils import timezone

from webhooks.models import Webhook
from webhooks.signing_keys import SigningSecrets

LIST = "/ui/settings/integrations/webhooks"
NEW = "/ui/settings/integrations/webhooks/new"
# Forms check where a URL points (it must resolve; loopback is allowed in tests), so posted
# URLs use a loopback address; rows made through the service may carry any URL.
RECEIVER = "http://127.0.0.1:9/hook"


def page(webhook, suffix: str = "") -> str:
    return f"{LIST}/{webhook.id}{suffix}"


def text(response) -> str:
    return response.content.decode()


# --- Access ------------------------------------------------------------------------------


def test_login_page_when_anonymous_shows_email_password_and_button(client, db):
    response = client.get("/ui/login")
    body = text(response)
    assert response.status_code == 200
    assert re.search(r'<label for="id_username">Email</label>', body)
    assert re.search(r'<label for="id_password">Password</label>', body)
    assert ">Log in</button>" in body
    assert "csrfmiddlewaretoken" in body


def test_login_when_credentials_valid_redirects_to_next(client, member):
    response = client.post("/ui/login", {"username": "Alice@Acme.example", "password": PASSWORD, "next": NEW})
    assert response.status_code == 302
    assert response["Location"] == NEW
    assert client.get(NEW).status_code == 200


def test_login_when_next_is_another_site_goes_to_webhooks(client, member):
    response = client.post(
        "/ui/login", {"username": "alice@acme.example", "password": PASSWORD, "next": "https://evil.example/"}
    )
    assert response["Location"] == LIST


def test_login_when_password_wrong_shows_error_and_stays_anonymous(client, member):
    response = client.post("/ui/login", {"username": "alice@acme.example", "password": "wrong password"})
    assert response.status_code == 200
    assert "Enter a correct email and password." in text(response)
    assert client.get(LIST).status_code == 302


@pytest.mark.parametrize("next_url", ["/ui/login", "/ui/login?next=/ui/login", "/ui/login%3Fnext%3D%2Fui%2Flogin"])
def test_login_page_sends_a_signed_in_user_to_the_webhooks_when_next_is_the_login_page(ui, next_url):
    response = ui.get(f"/ui/login?next={next_url}")

    assert response.status_code == 302
    assert response["Location"] == "/ui/settings/integrations/webhooks"


def test_sign_in_lands_on_the_webhooks_when_next_is_the_login_page(client, member):
    response = client.post("/ui/login?next=/ui/login", {"username": "alice@acme.example", "password": PASSWORD})

    assert response.status_code == 302
    assert response["Location"] == "/ui/settings/integrations/webhooks"


def test_login_when_user_has_no_organization_is_refused(client, db):
    from django.contrib.auth import get_user_model

    get_user_model().objects.create_user(username="loner@example.com", password=PASSWORD)
    response = client.post("/ui/login", {"username": "loner@example.com", "password": PASSWORD})
    assert response.status_code == 200
    assert "does not belong to any organization" in text(response)
    assert "_auth_user_id" not in client.session


@pytest.mark.parametrize(
    "path",
    [LIST, NEW, f"{LIST}/whk_x", f"{LIST}/whk_x/edit", f"{LIST}/whk_x/delete", f"{LIST}/whk_x/deliveries/dlv_y"],
)
def test_dashboard_page_when_anonymous_redirects_to_login_with_next(client, db, path):
    response = client.get(path + "?status=failed")
    assert response.status_code == 302
    assert response["Location"] == "/ui/login?next=" + quote(path + "?status=failed", safe="/")


def test_dashboard_when_signed_in_user_has_no_organization_is_forbidden_and_logged_out(client, db):
    from django.contrib.auth import get_user_model

    staff = get_user_model().objects.create_user(username="operator", password=PASSWORD, is_staff=True)
    client.force_login(staff)
    response = client.get(LIST)
    assert response.status_code == 403
    assert "not a member of any organization" in text(response)
    assert "_auth_user_id" not in client.session


def test_logout_when_posted_ends_the_session(ui):
    assert ui.get("/ui/logout").status_code == 405  # a link cannot log anyone out
    response = ui.post("/ui/logout")
    assert response.status_code == 302
    assert response["Location"] == "/ui/login"
    assert ui.get(LIST).status_code == 302


def test_post_when_csrf_token_missing_is_refused(tenant, member):
    webhook = make_webhook(tenant.organization, "https://example.com/hook").webhook
    client = Client(enforce_csrf_checks=True)
    client.force_login(member)
    response = client.post(page(webhook, "/disable"))
    assert response.status_code == 403
    webhook.refresh_from_db()
    assert webhook.enabled


def test_dashboard_pages_send_csp_and_are_not_cached(ui, tenant):
    webhook = make_webhook(tenant.organization, "https://example.com/hook").webhook
    for path in ["/ui/login", LIST, NEW, page(webhook), page(webhook, "/edit")]:
        response = ui.get(path, follow=True)
        assert response.status_code == 200, path
        csp = response["Content-Security-Policy"]
        assert "default-src 'self'" in csp
        assert "script-src 'self'" in csp
        assert "no-store" in response["Cache-Control"]
        assert response["X-Frame-Options"] == "DENY"
        assert "<script>" not in text(response)  # the only script is a static file


# --- The list ----------------------------------------------------------------------------


def test_webhook_list_when_empty_offers_new_webhook(ui):
    body = text(ui.get(LIST))
    assert "No webhooks yet" in body
    assert f'href="{NEW}"' in body
    assert "CyberCage" in body
    assert "Organization Settings" in body
    assert "Integrations" in body


def test_webhook_list_shows_url_events_status_rate_and_last_delivery(ui, tenant):
    webhook = make_webhook(tenant.organization, "https://example.com/a", ["threat.detected", "server.blocked"]).webhook
    disabled = make_webhook(tenant.organization, "https://example.com/b", enabled=False).webhook
    for _ in range(3):
        make_delivery(webhook, status="succeeded", attempt_log=[(200, "ok", "")])
    make_delivery(webhook, status="failed", attempt_log=[(500, "boom", "HTTP 500")])
    body = text(ui.get(LIST))
    assert "https://example.com/a" in body
    assert "https://example.com/b" in body
    assert "threat.detected" in body
    assert "server.blocked" in body
    assert "75%" in body
    assert 'badge-failed">failed<' in body  # the newest delivery of webhook a
    assert f'href="{page(webhook)}"' in body
    assert f'href="{page(disabled)}"' in body
    assert 'badge-disabled"' in body


# --- Create and edit ---------------------------------------------------------------------


def test_new_webhook_form_has_url_event_checkboxes_secret_enabled_description(ui):
    body = text(ui.get(NEW))
    assert '<label for="id_url">URL</label>' in body
    for name in ["threat.detected", "threat.blocked", "server.approved", "policy.violation", "agent.offline"]:
        assert f"<code>{name}</code>" in body
    assert "All events (*)" in body
    assert 'type="password" name="secret"' in body
    assert 'name="enabled"' in body
    assert 'name="description"' in body


def test_create_webhook_when_valid_reveals_the_secret_exactly_once(ui, tenant):
    from webhooks.models import Webhook

    response = ui.post(
        NEW,
        {"url": RECEIVER, "events": ["threat.detected", "server.blocked"], "enabled": "on"},
    )
    webhook = Webhook.objects.get(organization=tenant.organization)
    assert response.status_code == 302
    assert response["Location"] == page(webhook)
    secret = webhook.signing_secrets().documented
    assert secret not in response["Location"]
    first = text(ui.get(page(webhook)))
    assert secret in first
    assert "It will not be shown again." in first
    assert 'data-copy="signing-secret"' in first
    second = text(ui.get(page(webhook)))
    assert secret not in second
    assert "Hidden. Rotate it to get a new one." in second
    assert webhook.events == ["threat.detected", "server.blocked"]
    assert webhook.enabled


def test_create_webhook_with_own_secret_signs_with_that_secret(ui, tenant):
    from webhooks.models import Webhook

    ui.post(NEW, {"url": RECEIVER, "events": ["*"], "secret": "my-own-secret-123"})
    webhook = Webhook.objects.get(organization=tenant.organization)
    assert webhook.signing_secrets() == SigningSecrets.of("my-own-secret-123")
    assert webhook.events == ["*"]
    assert not webhook.enabled  # the checkbox was left unticked


def test_create_webhook_when_invalid_shows_each_error_next_to_its_field(ui, tenant):
    from webhooks.models import Webhook

    response = ui.post(NEW, {"url": "ftp://example.com/x", "secret": "zq7Xw", "description": "keep me"})
    body = text(response)
    assert response.status_code == 200
    assert re.search(r'id="url-error">[^<]*http[^<]*<', body)
    assert re.search(r'id="events-error">At least one event type is required', body)
    assert re.search(r'id="secret-error">Ensure this value has at least 12 characters', body)
    assert 'value="ftp://example.com/x"' in body
    assert "keep me" in body
    assert "zq7Xw" not in body  # the secret is never echoed back
    assert not Webhook.objects.exists()


def test_create_webhook_when_secret_cannot_sign_says_so_next_to_the_secret(ui, api, tenant):
    from webhooks.models import Webhook

    secret = "whsec_!!!!notbase64!!"
    body = text(ui.post(NEW, {"url": RECEIVER, "events": ["*"], "secret": secret}))

    shown = re.search(r'id="secret-error">([^<]*)<', body)
    assert shown is not None
    api_fields = api.post("/ui/api/webhooks", {"url": RECEIVER, "events": ["*"], "secret": secret}, format="json")
    assert [html.unescape(shown.group(1))] == api_fields.json()["fields"]["secret"]
    assert secret not in body
    assert not Webhook.objects.exists()


@pytest.mark.parametrize(("url", "events"), [("ftp://example.com/hook", ["*"]), (RECEIVER, ["threat.detected", "x.y"])])
def test_create_webhook_when_invalid_says_what_the_api_says(ui, api, url, events):
    body = text(ui.post(NEW, {"url": url, "events": events}))
    api_fields = api.post("/ui/api/webhooks", {"url": url, "events": events}, format="json").json()["fields"]
    for field, messages in api_fields.items():
        shown = re.search(rf'id="{field}-error">([^<]*)<', body)
        assert shown is not None, field
        assert [html.unescape(shown.group(1))] == messages


def test_edit_webhook_when_valid_saves_changes(ui, tenant):
    webhook = make_webhook(tenant.organization, "https://example.com/old", ["threat.detected"]).webhook
    form = text(ui.get(page(webhook, "/edit")))
    assert 'value="https://example.com/old"' in form
    assert 'name="secret"' not in form  # the secret is set on create or by rotation only
    response = ui.post(
        page(webhook, "/edit"),
        {"url": RECEIVER + "/new", "events": ["agent.online", "agent.offline"], "description": "ops"},
    )
    assert response.status_code == 302
    webhook.refresh_from_db()
    assert webhook.url == RECEIVER + "/new"
    assert webhook.events == ["agent.online", "agent.offline"]
    assert webhook.description == "ops"
    assert not webhook.enabled


def test_edit_webhook_when_invalid_shows_errors_and_changes_nothing(ui, tenant):
    webhook = make_webhook(tenant.organization, "https://example.com/old", ["threat.detected"]).webhook
    response = ui.post(page(webhook, "/edit"), {"url": "not a url", "events": ["no.such"]})
    body = text(response)
    assert 'id="url-error"' in body
    assert "Unknown event type(s): no.such." in body
    webhook.refresh_from_db()
    assert webhook.url == "https://example.com/old"


def test_user_text_is_escaped_everywhere(ui, tenant):
    webhook = make_webhook(
        tenant.organization, "https://example.com/hook?a=<b>", description='<script>alert("x")</script>'
    ).webhook
    for path in [LIST, page(webhook), page(webhook, "/edit"), page(webhook, "/delete")]:
        body = text(ui.get(path))
        assert "<script>alert" not in body, path
        assert "?a=<b>" not in body, path
    assert "&lt;script&gt;alert" in text(ui.get(LIST))


# --- The webhook page --------------------------------------------------------------------


def test_webhook_page_shows_settings_rates_charts_and_history(ui, tenant):
    webhook = make_webhook(tenant.organization, "https://example.com/hook", ["threat.detected"]).webhook
    now = timezone.now()
    ok = make_delivery(webhook, status="succeeded", attempt_log=[(200, "ok", "")], created_at=now - timedelta(hours=2))
    failed = make_delivery(
        webhook, status="failed", attempt_log=[(500, "", "HTTP 500")] * 2, created_at=now - timedelta(hours=1)
    )
    make_delivery(webhook, status="succeeded", attempt_log=[(200, "ok", "")], created_at=now - timedelta(days=3))
    retrying = make_delivery(webhook, status="retrying", attempt_log=[(503, "", "HTTP 503")])
    body = text(ui.get(page(webhook)))
    assert "https://example.com/hook" in body
    assert "threat.detected" in body
    day, week = body.split('aria-label="Last 7 days"')
    # Rates count attempts (1 of 4 in the day succeeded, 2 of 5 in the week), in red under 90 %.
    assert '<span class="rate rate-failing">25%</span>' in day
    assert '<span class="rate rate-failing">75%</span>' in day
    assert '<span class="rate">4</span><span class="muted small">attempts</span>' in day
    assert '<span class="rate rate-failing">40%</span>' in week
    assert '<span class="rate rate-failing">60%</span>' in week
    assert "p50 40 ms · p95 74 ms" in day  # of 40, 40, 40 and 80: no ".0" on whole milliseconds
    assert body.count('<svg class="chart-svg"') == 2
    assert body.count('class="bar-succeeded"') == 3  # one bar in the day's chart, two in the week's
    assert body.count('class="bar-failed"') == 2
    for delivery in [ok, failed, retrying]:
        assert f'href="{page(webhook)}/deliveries/{delivery.id}"' in body
    assert 'badge-retrying">retrying<' in body
    for button in [
        "Send test event",
        "Disable",
        "Rotate, keep the old secret for 24 hours",
        "Rotate, stop using the old secret now",
    ]:
        assert f">{button}</button>" in body
    assert 'href="#secret-settings">Rotate secret</a>' in body
    assert f'href="{page(webhook, "/delete")}"' in body


def test_webhook_page_history_filters_by_status_and_event_type(ui, tenant):
    webhook = make_webhook(tenant.organization, "https://example.com/hook").webhook
    a = make_delivery(webhook, status="failed", event_type="threat.detected")
    b = make_delivery(webhook, status="succeeded", event_type="threat.detected")
    c = make_delivery(webhook, status="failed", event_type="agent.online")
    body = text(ui.get(page(webhook), {"status": "failed"}))
    assert a.id in body
    assert c.id in body
    assert b.id not in body
    body = text(ui.get(page(webhook), {"status": "failed", "event": "agent.online"}))
    assert c.id in body
    assert a.id not in body
    assert b.id not in body
    body = text(ui.get(page(webhook), {"status": "nonsense"}))
    assert "Select a valid choice" in body
    assert a.id in body
    assert b.id in body


def test_webhook_page_history_pages_by_keyset_newest_first(ui, tenant):
    from dashboard.history import HISTORY_PAGE_SIZE

    webhook = make_webhook(tenant.organization, "https://example.com/hook").webhook
    ids = [make_delivery(webhook, status="failed" if i % 2 else "succeeded").id for i in range(HISTORY_PAGE_SIZE + 5)]
    newest_first = sorted(ids, reverse=True)

    def shown(body: str) -> list[str]:
        return re.findall(r'class="mono" href="[^"]+/deliveries/(dlv_\w+)"', body)

    first = text(ui.get(page(webhook)))
    assert shown(first) == newest_first[:HISTORY_PAGE_SIZE]
    older = re.search(r'href="(\?before=[^"]+)">Older', first).group(1).replace("&amp;", "&")
    assert "Newer" not in first
    second = text(ui.get(page(webhook) + older.split("#")[0]))
    assert shown(second) == newest_first[HISTORY_PAGE_SIZE:]
    assert "Older" not in second
    newer = re.search(r'href="(\?after=[^"]+)">← Newer', second).group(1).replace("&amp;", "&")
    assert shown(text(ui.get(page(webhook) + newer.split("#")[0]))) == newest_first[:HISTORY_PAGE_SIZE]
    # Filters survive paging.
    filtered = text(ui.get(page(webhook), {"status": "failed"}))
    assert all(delivery_id in ids[1::2] for delivery_id in shown(filtered))


def test_send_test_event_when_posted_queues_a_delivery_of_that_type(ui, tenant):
    from deliveries.models import Delivery

    webhook = make_webhook(tenant.organization, "https://example.com/hook", ["threat.detected"]).webhook
    response = ui.post(page(webhook, "/test"), {"event": "server.approved"}, follow=True)
    delivery = Delivery.objects.get(webhook=webhook)
    assert delivery.event_type == "server.approved"
    assert delivery.event.envelope["data"]["approved_by"] == "admin@example.com"
    body = text(response)
    assert f"queued as delivery {delivery.id}" in body
    assert delivery.id in body


def test_disable_and_enable_when_posted_toggle_the_webhook(ui, tenant):
    webhook = make_webhook(tenant.organization, "https://example.com/hook").webhook
    body = text(ui.post(page(webhook, "/disable"), follow=True))
    webhook.refresh_from_db()
    assert not webhook.enabled
    assert webhook.disabled_reason == Webhook.DisabledReason.USER
    assert "disabled by user" in body  # the reason, as a sentence
    assert ">Enable</button>" in body
    assert 'badge-disabled">disabled<' in body
    assert ui.get(page(webhook, "/disable")).status_code == 405
    ui.post(page(webhook, "/enable"))
    webhook.refresh_from_db()
    assert webhook.enabled
    assert webhook.disabled_reason == ""


def test_retry_and_test_event_on_a_disabled_webhook_say_to_enable_it_and_queue_nothing(ui, tenant):
    from deliveries.models import Delivery

    webhook = make_webhook(tenant.organization, "https://example.com/hook").webhook
    delivery = make_delivery(webhook, status="failed", attempt_log=[(500, "", "HTTP 500")])
    ui.post(page(webhook, "/disable"))

    retried = text(ui.post(page(webhook, f"/deliveries/{delivery.id}/retry"), follow=True))
    tested = text(ui.post(page(webhook, "/test"), {"event": "test.ping"}, follow=True))

    assert html.escape(f"Webhook {webhook.id} is disabled (disabled by user). Enable it first, then retry.") in retried
    assert "Retry queued" not in retried
    assert "Enable it first, then send a test event. Nothing was queued." in tested
    assert list(Delivery.objects.values_list("id", "status")) == [(delivery.id, "failed")]


def test_rotate_secret_when_posted_reveals_the_new_secret_once(ui, tenant):
    created = make_webhook(tenant.organization, "https://example.com/hook", secret="the-old-secret-1234")
    webhook = created.webhook
    response = ui.post(page(webhook, "/rotate-secret"))
    assert response["Location"] == page(webhook)
    webhook.refresh_from_db()
    secrets = webhook.signing_secrets()
    new, old = secrets.standard
    assert secrets.documented == old  # the overlap: receivers with the old secret keep verifying
    assert old == "the-old-secret-1234"
    assert new != old
    first = text(ui.get(page(webhook)))
    assert new in first
    assert "New signing secret" in first
    assert "previous secret keeps signing" in first
    assert old not in first
    assert new not in text(ui.get(page(webhook)))


STOP_NOW_BUTTON = ">Stop using the old secret now</button>"


def test_rotate_keeping_the_old_secret_shows_when_the_switch_happens_and_can_end_it_early(ui, tenant):
    from webhooks.signing_keys import SigningSecrets

    webhook = make_webhook(tenant.organization, "https://example.com/hook", secret="the-old-secret-1234").webhook
    assert STOP_NOW_BUTTON not in text(ui.get(page(webhook)))

    revealed = text(ui.post(page(webhook, "/rotate-secret"), {"previous": "keep"}, follow=True))

    webhook.refresh_from_db()
    until = webhook.previous_secret_until()
    assert until is not None
    switch = f"until {until:%b} {until.day}, {until:%H:%M} UTC"
    assert f"Nothing breaks meanwhile: {switch} the previous secret keeps signing" in revealed
    assert f"Rotation under way: {switch} the previous secret still signs" in revealed
    assert STOP_NOW_BUTTON in revealed
    new = webhook.signing_secrets().standard[0]

    ended = text(ui.post(page(webhook, "/expire-previous-secret"), follow=True))

    assert "The old secret no longer signs: the new one signs every delivery from now on." in ended
    assert "Rotation under way" not in ended
    assert STOP_NOW_BUTTON not in ended
    webhook.refresh_from_db()
    assert webhook.signing_secrets() == SigningSecrets.of(new)


def test_rotate_stopping_the_old_secret_now_signs_with_the_new_one_alone(ui, tenant):
    from webhooks.signing_keys import SigningSecrets

    webhook = make_webhook(tenant.organization, "https://example.com/hook", secret="the-old-secret-1234").webhook

    revealed = text(ui.post(page(webhook, "/rotate-secret"), {"previous": "stop"}, follow=True))

    webhook.refresh_from_db()
    new = webhook.signing_secrets().documented
    assert webhook.signing_secrets() == SigningSecrets.of(new)
    assert new in revealed
    assert "This secret signs every delivery from now on" in revealed
    assert "Rotation under way" not in revealed
    assert STOP_NOW_BUTTON not in revealed


def test_rotate_with_an_unknown_choice_changes_nothing_and_says_so(ui, tenant):
    from webhooks.signing_keys import SigningSecrets

    webhook = make_webhook(tenant.organization, "https://example.com/hook", secret="the-old-secret-1234").webhook

    body = text(ui.post(page(webhook, "/rotate-secret"), {"previous": "later"}, follow=True))

    assert "Choose whether the old secret keeps signing for a while or stops now." in body
    webhook.refresh_from_db()
    assert webhook.signing_secrets() == SigningSecrets.of("the-old-secret-1234")


def test_secret_revealed_for_one_webhook_is_not_shown_on_another(ui, tenant):
    from webhooks.models import Webhook

    other = make_webhook(tenant.organization, "https://example.com/other").webhook
    ui.post(NEW, {"url": RECEIVER, "events": ["*"]})
    created = Webhook.objects.exclude(id=other.id).get()
    assert created.signing_secrets().documented not in text(ui.get(page(other)))
    assert created.signing_secrets().documented not in text(ui.get(page(created)))  # popped, not kept


def test_delete_when_confirmed_deletes_and_when_only_viewed_does_not(ui, tenant):
    from webhooks.models import Webhook

    webhook = make_webhook(tenant.organization, "https://example.com/hook").webhook
    confirm = text(ui.get(page(webhook, "/delete")))
    assert "Delete webhook?" in confirm
    assert ">Delete webhook</button>" in confirm
    assert Webhook.objects.filter(id=webhook.id).exists()
    response = ui.post(page(webhook, "/delete"), follow=True)
    assert not Webhook.objects.filter(id=webhook.id).exists()
    assert response.redirect_chain[-1][0] == LIST
    assert "deleted" in text(response)


# --- The delivery page -------------------------------------------------------------------


def test_delivery_page_shows_envelope_and_every_attempt(ui, tenant):
    webhook = make_webhook(tenant.organization, "https://example.com/hook").webhook
    delivery = make_delivery(
        webhook,
        status="succeeded",
        attempt_log=[(None, "", "connection refused"), (502, "<html>bad gateway</html>", "HTTP 502"), (200, "ok", "")],
    )
    body = text(ui.get(page(webhook, f"/deliveries/{delivery.id}")))
    assert '"event": "threat.detected"' in body.replace("&quot;", '"')
    assert f'"id": "{delivery.event_id}"' in body.replace("&quot;", '"')
    assert "connection refused" in body
    assert "&lt;html&gt;bad gateway&lt;/html&gt;" in body
    assert ">502</span>" in body
    assert ">200</span>" in body
    assert "80 ms" in body
    assert "120 ms" in body
    assert ">Retry</button>" in body


def _summary_row(body: str, term: str) -> str:
    match = re.search(rf"<dt>{term}</dt><dd>(.*?)</dd>", body, flags=re.S)
    assert match, term
    return match.group(1)


@pytest.mark.parametrize(
    ("attempt", "last_response"),
    [((500, "", "HTTP 500"), "HTTP 500"), ((None, "", "timeout after 30.0s"), "timeout after 30.0s"), (None, "—")],
)
def test_delivery_page_keeps_last_response_apart_from_a_reason_that_was_not_an_attempt(
    ui, tenant, attempt, last_response
):
    from deliveries.models import Delivery

    webhook = make_webhook(tenant.organization, "https://example.com/hook").webhook
    # Attempted (or not), then it came due while its webhook was disabled: failed, not attempted.
    delivery = make_delivery(
        webhook,
        status="failed",
        attempt_log=[attempt] if attempt else [],
        last_error=Delivery.NOT_ATTEMPTED_DISABLED,
    )

    body = text(ui.get(page(webhook, f"/deliveries/{delivery.id}")))
    history = text(ui.get(page(webhook)))

    assert re.sub(r"<[^>]+>", "", _summary_row(body, "Last response")) == last_response
    assert "webhook disabled: not attempted" in _summary_row(body, "Status")
    row = re.search(rf"{delivery.id}</a>.*?</tr>", history, flags=re.S).group(0)
    assert ("not attempted" in row) is (attempt is None or attempt[0] is None)
    if attempt and attempt[0]:
        assert f'<td class="num" data-label="Response">{attempt[0]}</td>' in row


def test_delivery_retry_when_posted_queues_another_attempt(ui, tenant):
    from deliveries.models import Delivery

    webhook = make_webhook(tenant.organization, "https://example.com/hook").webhook
    delivery = make_delivery(webhook, status="failed", attempt_log=[(500, "", "HTTP 500")])
    response = ui.post(page(webhook, f"/deliveries/{delivery.id}/retry"), follow=True)
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.RETRYING
    assert delivery.next_attempt_at is not None
    assert "Retry queued" in text(response)


# --- Isolation ---------------------------------------------------------------------------


def test_other_organization_gets_404_on_every_page_and_action_and_sees_nothing(ui, other_ui, tenant):
    webhook = make_webhook(tenant.organization, "https://acme.example/secret-hook").webhook
    delivery = make_delivery(webhook, status="failed", attempt_log=[(500, "", "HTTP 500")])
    for path in [
        page(webhook),
        page(webhook, "/edit"),
        page(webhook, "/delete"),
        page(webhook, f"/deliveries/{delivery.id}"),
        page(webhook, f"/deliveries/{delivery.id}/payload"),
    ]:
        response = other_ui.get(path)
        assert response.status_code == 404, path
        assert "acme.example" not in text(response)
        assert "There is no such webhook or delivery in your organization." in text(response)
    for path in [
        "/disable",
        "/rotate-secret",
        "/expire-previous-secret",
        "/delete",
        "/test",
        f"/deliveries/{delivery.id}/retry",
        "/edit",
    ]:
        assert other_ui.post(page(webhook, path), {"url": "https://evil.example", "events": ["*"]}).status_code == 404
    body = text(other_ui.get(LIST))
    assert "acme.example" not in body
    assert "No webhooks yet" in body
    webhook.refresh_from_db()
    delivery.refresh_from_db()
    assert webhook.enabled
    assert webhook.url == "https://acme.example/secret-hook"
    assert delivery.status == "failed"
    # A delivery id of one webhook is not found under another webhook of the same organization.
    sibling = make_webhook(tenant.organization, "https://acme.example/other").webhook
    assert ui.get(page(sibling, f"/deliveries/{delivery.id}")).status_code == 404


def test_create_webhook_when_quota_reached_says_so_and_creates_nothing(ui, tenant, settings):
    from webhooks.models import Webhook

    settings.WEBHOOK_MAX_PER_ORGANIZATION = 1
    ui.post(NEW, {"url": RECEIVER, "events": ["*"]})

    response = ui.post(NEW, {"url": RECEIVER, "events": ["*"], "description": "second"})

    assert response.status_code == 200
    assert "reached its limit of 1 webhooks" in text(response)
    assert Webhook.objects.filter(organization=tenant.organization).count() == 1
