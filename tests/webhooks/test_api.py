"""``/ui/api/webhooks``, ``/ui/api/event-types`` and the API's authentication and errors,
through DRF's APIClient against the real test database."""

from __future__ import annotations

import base64
import io
import json
from datetime import datetime, timedelta

import pytest
from conftest import api_client, make_webhook
from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIClient

from webhooks import services
from webhooks.models import Webhook
from webhooks.signing_keys import SigningSecrets

pytestmark = pytest.mark.django_db


# IP literals: valid destinations need no DNS (the test machine has no internet).
PUBLIC_URL = "https://93.184.216.34/hook"
OTHER_PUBLIC_URL = "https://93.184.216.35/other"
DOCUMENTED_TYPES = {
    "threat.detected",
    "threat.blocked",
    "server.approved",
    "server.blocked",
    "server.pending",
    "agent.online",
    "agent.offline",
    "policy.violation",
}
WEBHOOK_FIELDS = {"id", "url", "events", "enabled", "description", "created_at", "updated_at"}


def _create(api, **body):
    body = {"url": PUBLIC_URL, "events": ["threat.detected"], **body}
    return api.post("/ui/api/webhooks", body, format="json")


def _assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["error"] == code
    assert isinstance(body["message"], str)
    assert body["message"]
    return body


def _assert_field_error(response, field: str) -> dict:
    body = _assert_error(response, 400, "invalid_request")
    # A list item's error is named after its field too: "events[0]".
    assert any(name == field or name.startswith(f"{field}[") for name in body["fields"]), body
    return body


# --- Authentication ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "Token cck_00000000_abc",
        "Bearer cck_00000000_not-a-real-key",
        "Bearer not-even-the-right-shape",
    ],
)
def test_api_refuses_request_when_key_missing_malformed_or_wrong(tenant, header):
    client = APIClient()
    if header is not None:
        client.credentials(HTTP_AUTHORIZATION=header)
    for method, path in [
        ("get", "/ui/api/webhooks"),
        ("post", "/ui/api/webhooks"),
        ("get", "/ui/api/event-types"),
        ("post", "/ui/api/events"),
    ]:
        response = getattr(client, method)(path, {}, format="json") if method == "post" else client.get(path)
        _assert_error(response, 401, "unauthorized")


def test_api_refuses_key_when_one_character_is_changed(tenant):
    last = tenant.key[-1]
    tampered = tenant.key[:-1] + ("A" if last != "A" else "B")
    _assert_error(api_client(tampered).get("/ui/api/webhooks"), 401, "unauthorized")


def test_api_refuses_key_when_revoked_with_command(tenant):
    client = api_client(tenant.key)
    assert client.get("/ui/api/webhooks").status_code == 200
    call_command("revoke_api_key", tenant.key, stdout=io.StringIO(), stderr=io.StringIO())
    _assert_error(client.get("/ui/api/webhooks"), 401, "unauthorized")


def test_api_keys_are_stored_only_as_a_hash(tenant):
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM webhooks_apikey")
        rows = cursor.fetchall()
    assert rows
    for row in rows:
        for value in row:
            assert tenant.key not in str(value)


# --- Create --------------------------------------------------------------------------------


def test_create_webhook_returns_generated_secret_when_none_supplied(api):
    response = _create(api, description="SIEM")
    assert response.status_code == 201, response.content
    body = response.json()
    assert WEBHOOK_FIELDS | {"secret"} <= set(body)
    assert body["id"].startswith("whk_")
    assert body["url"] == PUBLIC_URL
    assert body["events"] == ["threat.detected"]
    assert body["enabled"] is True
    assert body["description"] == "SIEM"
    assert body["secret"].startswith("whsec_")
    assert len(base64.b64decode(body["secret"].removeprefix("whsec_"), validate=True)) == 32
    webhook = Webhook.objects.get(id=body["id"])
    assert webhook.signing_secrets() == SigningSecrets.of(body["secret"])


def test_create_webhook_echoes_secret_when_supplied(api):
    response = _create(api, secret="webhook_secret", events=["*"], enabled=False)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["secret"] == "webhook_secret"
    assert body["events"] == ["*"]
    assert body["enabled"] is False
    assert Webhook.objects.get(id=body["id"]).signing_secrets() == SigningSecrets.of("webhook_secret")


def test_create_webhook_generates_distinct_secrets_when_called_twice(api):
    first, second = _create(api).json(), _create(api).json()
    assert first["secret"] != second["secret"]
    assert first["id"] != second["id"]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"url": "/relative/hook"}, "url"),
        ({"url": "example.com/hook"}, "url"),
        ({"url": "ftp://93.184.216.34/hook"}, "url"),
        ({"url": "javascript:alert(1)"}, "url"),
        ({"url": "https://user:password@93.184.216.34/hook"}, "url"),
        ({"url": "https://user@93.184.216.34/hook"}, "url"),
        ({"url": "https://93.184.216.34:99999/hook"}, "url"),
        ({"url": "http://[::1/hook"}, "url"),
        ({"url": "https://93.184.216.34/" + "a" * 2048}, "url"),
        ({"url": ""}, "url"),
        ({"url": 42}, "url"),
        ({"url": None}, "url"),
        ({"events": []}, "events"),
        ({"events": "threat.detected"}, "events"),
        ({"events": {"threat.detected": True}}, "events"),
        ({"events": ["threat.exploded"]}, "events"),
        ({"events": [7]}, "events"),
        ({"secret": "short"}, "secret"),
        ({"secret": "x" * 11}, "secret"),
        ({"secret": 123456789012345}, "secret"),
        ({"enabled": "maybe"}, "enabled"),
        ({"enabled": "yes"}, "enabled"),
        ({"enabled": 1}, "enabled"),
        ({"description": ["a"]}, "description"),
        ({"colour": "blue"}, "colour"),
        ({"id": "whk_mine"}, "id"),
    ],
)
def test_create_webhook_refuses_invalid_field_when_named_in_error(api, changes, field):
    response = _create(api, **changes)
    _assert_field_error(response, field)
    assert not Webhook.objects.exists()


@pytest.mark.parametrize("missing", ["url", "events"])
def test_create_webhook_refuses_body_when_required_field_missing(api, missing):
    body = {"url": PUBLIC_URL, "events": ["*"]}
    del body[missing]
    _assert_field_error(api.post("/ui/api/webhooks", body, format="json"), missing)


def test_create_webhook_lists_valid_types_when_event_unknown(api):
    body = _assert_field_error(_create(api, events=["threat.detected", "threat.exploded"]), "events")
    message = " ".join(body["fields"]["events"]) + body["message"]
    assert "threat.exploded" in message
    for name in DOCUMENTED_TYPES:
        assert name in message


@pytest.mark.parametrize("raw", ['["not", "an", "object"]', '"string"', "null", "42"])
def test_create_webhook_refuses_body_when_not_an_object(api, raw):
    response = api.post("/ui/api/webhooks", raw, content_type="application/json")
    _assert_field_error(response, "body")


@pytest.mark.parametrize("raw", ['{"url": ', "{'url': 'x'}", '{"url": NaN}', "\xff\xfe"])
def test_create_webhook_refuses_body_when_json_malformed(api, raw):
    response = api.post("/ui/api/webhooks", raw, content_type="application/json")
    body = _assert_field_error(response, "body")
    assert "JSON" in body["message"]


def test_create_webhook_refuses_body_when_not_json(api):
    response = api.post(
        "/ui/api/webhooks", "url=https://93.184.216.34/", content_type="application/x-www-form-urlencoded"
    )
    _assert_error(response, 415, "unsupported_media_type")


def test_create_webhook_never_echoes_secret_when_refused(api):
    secret = "a-perfectly-fine-secret-value"
    response = _create(api, url="ftp://93.184.216.34/", secret=secret)
    assert response.status_code == 400
    assert secret not in response.content.decode()


def test_create_webhook_removes_duplicate_events_when_repeated(api):
    response = _create(api, events=["threat.detected", "agent.online", "threat.detected"])
    assert response.status_code == 201, response.content
    assert response.json()["events"] == ["threat.detected", "agent.online"]


# --- Read, list ----------------------------------------------------------------------------


def test_get_webhook_shows_configuration_without_secret(api):
    created = _create(api, secret="webhook_secret").json()
    response = api.get(f"/ui/api/webhooks/{created['id']}")
    assert response.status_code == 200
    body = response.json()
    assert set(body) >= WEBHOOK_FIELDS
    assert "secret" not in body
    assert "webhook_secret" not in response.content.decode()
    assert {k: body[k] for k in WEBHOOK_FIELDS} == {k: created[k] for k in WEBHOOK_FIELDS}


def test_get_webhook_answers_404_when_id_unknown(api):
    _assert_error(api.get("/ui/api/webhooks/whk_doesnotexist"), 404, "not_found")


def test_list_webhooks_pages_newest_first_when_limit_given(api, tenant):
    secrets = []
    ids = []
    for i in range(5):
        created = make_webhook(tenant.organization, f"https://93.184.216.34/{i}")
        ids.append(created.webhook.id)
        secrets.append(created.secret)

    seen = []
    url = "/ui/api/webhooks?limit=2"
    pages = 0
    while url:
        response = api.get(url)
        assert response.status_code == 200, response.content
        body = response.json()
        assert len(body["results"]) <= 2
        for secret in secrets:
            assert secret not in response.content.decode()
        assert all("secret" not in row for row in body["results"])
        seen.extend(row["id"] for row in body["results"])
        url = body["next"]
        pages += 1
        assert pages <= 4
    assert pages == 3
    assert seen == list(reversed(ids))


def test_list_webhooks_is_empty_when_organization_has_none(api):
    response = api.get("/ui/api/webhooks")
    assert response.status_code == 200
    assert response.json()["results"] == []
    assert response.json()["next"] is None


@pytest.mark.parametrize(
    ("query", "field"), [("?limit=0", "limit"), ("?limit=many", "limit"), ("?colour=red", "colour")]
)
def test_list_webhooks_refuses_query_when_invalid(api, query, field):
    _assert_field_error(api.get(f"/ui/api/webhooks{query}"), field)


def test_list_webhooks_refuses_cursor_when_tampered(api, tenant):
    make_webhook(tenant.organization, PUBLIC_URL)
    response = api.get("/ui/api/webhooks?cursor=not-a-cursor")
    _assert_field_error(response, "cursor")


# --- Update, delete ------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["put", "patch"])
def test_update_webhook_disables_when_body_is_only_enabled_false(api, method):
    created = _create(api, secret="webhook_secret", description="keep me").json()
    response = getattr(api, method)(f"/ui/api/webhooks/{created['id']}", {"enabled": False}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["enabled"] is False
    assert body["url"] == PUBLIC_URL
    assert body["events"] == ["threat.detected"]
    assert body["description"] == "keep me"
    assert "secret" not in body
    assert "webhook_secret" not in response.content.decode()
    assert api.get(f"/ui/api/webhooks/{created['id']}").json()["enabled"] is False
    assert Webhook.objects.get(id=created["id"]).signing_secrets() == SigningSecrets.of("webhook_secret")


def test_update_webhook_changes_url_and_events_when_valid(api):
    created = _create(api).json()
    response = api.put(
        f"/ui/api/webhooks/{created['id']}",
        {"url": OTHER_PUBLIC_URL, "events": ["*"], "description": "all of it"},
        format="json",
    )
    assert response.status_code == 200, response.content
    fresh = api.get(f"/ui/api/webhooks/{created['id']}").json()
    assert (fresh["url"], fresh["events"], fresh["description"]) == (OTHER_PUBLIC_URL, ["*"], "all of it")
    assert fresh["updated_at"] >= created["updated_at"]


def test_update_webhook_reenables_when_enabled_true(api):
    created = _create(api, enabled=False).json()
    response = api.patch(f"/ui/api/webhooks/{created['id']}", {"enabled": True}, format="json")
    assert response.status_code == 200
    assert response.json()["enabled"] is True


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"url": "ftp://93.184.216.34/"}, "url"),
        ({"url": "https://u:p@93.184.216.34/"}, "url"),
        ({"events": []}, "events"),
        ({"events": ["nope"]}, "events"),
        ({"enabled": "off"}, "enabled"),
        ({"secret": "a-new-secret-value"}, "secret"),
        ({"organization": "org_x"}, "organization"),
    ],
)
def test_update_webhook_refuses_and_changes_nothing_when_invalid(api, changes, field):
    created = _create(api, secret="webhook_secret").json()
    before = Webhook.objects.values().get(id=created["id"])
    response = api.put(f"/ui/api/webhooks/{created['id']}", changes, format="json")
    _assert_field_error(response, field)
    assert "webhook_secret" not in response.content.decode()
    assert Webhook.objects.values().get(id=created["id"]) == before


def test_update_webhook_refuses_body_when_not_an_object(api):
    created = _create(api).json()
    response = api.put(f"/ui/api/webhooks/{created['id']}", "[1]", content_type="application/json")
    _assert_field_error(response, "body")


def test_delete_webhook_answers_204_then_404(api):
    created = _create(api).json()
    response = api.delete(f"/ui/api/webhooks/{created['id']}")
    assert response.status_code == 204
    assert not response.content
    _assert_error(api.get(f"/ui/api/webhooks/{created['id']}"), 404, "not_found")
    _assert_error(api.delete(f"/ui/api/webhooks/{created['id']}"), 404, "not_found")
    assert api.get("/ui/api/webhooks").json()["results"] == []


def test_webhook_paths_answer_404_when_trailing_slash(api):
    created = _create(api).json()
    _assert_error(api.get("/ui/api/webhooks/"), 404, "not_found")
    _assert_error(api.get(f"/ui/api/webhooks/{created['id']}/"), 404, "not_found")


# --- Secret rotation -----------------------------------------------------------------------


def test_rotate_secret_returns_new_secret_once(api):
    created = _create(api, secret="webhook_secret").json()
    response = api.post(f"/ui/api/webhooks/{created['id']}/rotate-secret", format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["id"] == created["id"]
    assert body["secret"].startswith("whsec_")
    assert body["secret"] != "webhook_secret"
    # Until the switch the old secret signs X-CyberCage-Signature; webhook-signature carries both.
    assert Webhook.objects.get(id=created["id"]).signing_secrets() == SigningSecrets(
        documented="webhook_secret", standard=(body["secret"], "webhook_secret")
    )
    after = api.get(f"/ui/api/webhooks/{created['id']}")
    assert "secret" not in after.json()
    assert body["secret"] not in after.content.decode()
    assert body["secret"] not in api.get("/ui/api/webhooks").content.decode()


def test_rotate_secret_uses_supplied_secret_when_given(api):
    created = _create(api).json()
    response = api.post(
        f"/ui/api/webhooks/{created['id']}/rotate-secret", {"secret": "my-own-new-secret"}, format="json"
    )
    assert response.status_code == 200, response.content
    assert response.json()["secret"] == "my-own-new-secret"


def test_rotate_secret_refuses_and_keeps_secret_when_too_short(api):
    created = _create(api, secret="webhook_secret").json()
    response = api.post(f"/ui/api/webhooks/{created['id']}/rotate-secret", {"secret": "short"}, format="json")
    _assert_field_error(response, "secret")
    assert Webhook.objects.get(id=created["id"]).signing_secrets() == SigningSecrets.of("webhook_secret")


def _rotate(api, webhook_id: str, **body):
    return api.post(f"/ui/api/webhooks/{webhook_id}/rotate-secret", body, format="json")


def _parsed(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_rotate_secret_says_when_the_previous_secret_stops_signing(api, settings):
    created = _create(api, secret="webhook_secret").json()
    assert created["previous_secret_expires_at"] is None
    before = timezone.now()

    body = _rotate(api, created["id"]).json()

    until = _parsed(body["previous_secret_expires_at"])
    overlap = timedelta(seconds=settings.WEBHOOK_SECRET_OVERLAP)
    assert before + overlap <= until <= timezone.now() + overlap
    assert (
        api.get(f"/ui/api/webhooks/{created['id']}").json()["previous_secret_expires_at"]
        == body["previous_secret_expires_at"]
    )


def test_rotate_secret_keeps_the_old_secret_for_expire_previous_in_seconds(api):
    created = _create(api, secret="webhook_secret").json()
    before = timezone.now()

    body = _rotate(api, created["id"], expire_previous_in=3600).json()

    assert (
        before + timedelta(hours=1)
        <= _parsed(body["previous_secret_expires_at"])
        <= timezone.now() + timedelta(hours=1)
    )
    assert Webhook.objects.get(id=created["id"]).signing_secrets().documented == "webhook_secret"


def test_rotate_secret_with_expire_previous_in_zero_switches_both_headers_at_once(api):
    created = _create(api, secret="webhook_secret").json()
    _rotate(api, created["id"])  # an overlap under way is ended too

    body = _rotate(api, created["id"], expire_previous_in=0).json()

    assert body["previous_secret_expires_at"] is None
    webhook = Webhook.objects.get(id=created["id"])
    assert webhook.signing_secrets() == SigningSecrets.of(body["secret"])
    assert webhook.previous_secret_encrypted == ""


@pytest.mark.parametrize("value", [-1, 7 * 24 * 3600 + 1, "60", 60.5, True, None])
def test_rotate_secret_refuses_expire_previous_in_outside_0_to_7_days(api, value):
    created = _create(api, secret="webhook_secret").json()

    body = _assert_field_error(_rotate(api, created["id"], expire_previous_in=value), "expire_previous_in")

    assert body["message"].startswith("expire_previous_in: ")
    assert Webhook.objects.get(id=created["id"]).signing_secrets() == SigningSecrets.of("webhook_secret")


def test_rotate_secret_again_during_the_overlap_keeps_the_old_secret_signing(api):
    created = _create(api, secret="webhook_secret").json()
    _rotate(api, created["id"])

    newest = _rotate(api, created["id"]).json()["secret"]

    assert Webhook.objects.get(id=created["id"]).signing_secrets() == SigningSecrets(
        documented="webhook_secret", standard=(newest, "webhook_secret")
    )


def test_expire_previous_secret_ends_the_overlap_and_is_idempotent(api):
    created = _create(api, secret="webhook_secret").json()
    new = _rotate(api, created["id"]).json()["secret"]

    responses = [api.post(f"/ui/api/webhooks/{created['id']}/expire-previous-secret") for _ in range(2)]

    for response in responses:
        assert response.status_code == 200, response.content
        assert response.json()["previous_secret_expires_at"] is None
        assert "secret" not in response.json()
    webhook = Webhook.objects.get(id=created["id"])
    assert webhook.signing_secrets() == SigningSecrets.of(new)
    assert webhook.previous_secret_encrypted == ""


def test_an_update_from_an_instance_read_before_a_rotation_keeps_the_rotation(tenant):
    webhook = make_webhook(tenant.organization, PUBLIC_URL, secret="webhook_secret").webhook
    stale = Webhook.objects.get(id=webhook.id)
    new = services.webhook_rotate_secret(webhook=webhook)

    services.webhook_update(webhook=stale, changes={"description": "edited meanwhile"})

    fresh = Webhook.objects.get(id=webhook.id)
    assert fresh.description == "edited meanwhile"
    assert fresh.signing_secrets() == SigningSecrets(documented="webhook_secret", standard=(new, "webhook_secret"))


# --- Refused destinations -----------------------------------------------------------------


def test_create_and_update_say_a_name_resolves_to_a_non_public_address_without_naming_it(api, settings):
    created = _create(api).json()
    settings.WEBHOOK_ALLOWED_NETWORKS = []  # production: nothing exempt

    refusals = [
        _create(api, url="http://localhost:8080/hook"),
        api.patch(f"/ui/api/webhooks/{created['id']}", {"url": "http://localhost:8080/hook"}, format="json"),
    ]

    for response in refusals:
        body = _assert_field_error(response, "url")
        assert body["fields"]["url"] == [
            "host resolves to a non-public address; webhook URLs must reach a publicly routable host."
        ]
        assert "127.0.0.1" not in response.content.decode()
    assert Webhook.objects.get(id=created["id"]).url == PUBLIC_URL


def test_create_names_a_literal_address_and_its_kind_when_refused(api, settings):
    settings.WEBHOOK_ALLOWED_NETWORKS = []

    body = _assert_field_error(_create(api, url="http://10.0.0.7/hook"), "url")

    assert body["fields"]["url"] == ["10.0.0.7 is a private address; webhook URLs must reach a publicly routable host."]


# --- Secrets that cannot sign ------------------------------------------------------------

UNSIGNABLE = "whsec_!!!!notbase64!!"


def test_create_webhook_refuses_a_secret_that_cannot_sign(api):
    body = _assert_field_error(_create(api, secret=UNSIGNABLE), "secret")

    assert "cannot sign" in body["fields"]["secret"][0]
    assert "base64" in body["fields"]["secret"][0]
    assert UNSIGNABLE not in json.dumps(body)
    assert not Webhook.objects.exists()


def test_rotate_secret_refuses_a_secret_that_cannot_sign_and_keeps_the_old_one(api):
    created = _create(api, secret="webhook_secret").json()

    response = api.post(f"/ui/api/webhooks/{created['id']}/rotate-secret", {"secret": UNSIGNABLE}, format="json")

    _assert_field_error(response, "secret")
    assert Webhook.objects.get(id=created["id"]).signing_secrets() == SigningSecrets.of("webhook_secret")


@pytest.mark.parametrize("method", ["put", "patch"])
def test_update_webhook_refuses_a_secret_that_cannot_sign(api, method):
    created = _create(api, secret="webhook_secret").json()

    response = getattr(api, method)(f"/ui/api/webhooks/{created['id']}", {"secret": UNSIGNABLE}, format="json")

    _assert_field_error(response, "secret")  # secrets change by rotation only
    assert Webhook.objects.get(id=created["id"]).signing_secrets() == SigningSecrets.of("webhook_secret")


def test_secrets_that_sign_are_accepted_whether_whsec_base64_or_plain(api):
    for secret in ["whsec_" + base64.b64encode(b"k" * 24).decode(), "whsec_" + "QUJD" * 4, "plain-secret-!!!!"]:
        assert _create(api, secret=secret).status_code == 201


def test_services_refuse_a_secret_that_cannot_sign_when_called_directly(tenant):
    from webhooks import services

    with pytest.raises(ValueError, match="base64"):
        services.webhook_create(organization=tenant.organization, url=PUBLIC_URL, events=["*"], secret=UNSIGNABLE)
    webhook = make_webhook(tenant.organization, PUBLIC_URL, secret="webhook_secret").webhook
    with pytest.raises(ValueError, match="base64"):
        services.webhook_rotate_secret(webhook=webhook, secret=UNSIGNABLE)
    assert Webhook.objects.get(id=webhook.id).signing_secrets() == SigningSecrets.of("webhook_secret")


# --- Event types ---------------------------------------------------------------------------


def test_event_types_lists_documented_types_and_test_ping(api):
    response = api.get("/ui/api/event-types")
    assert response.status_code == 200
    types = {row["name"]: row for row in response.json()["results"]}
    assert set(types) == DOCUMENTED_TYPES | {"test.ping"}
    for row in types.values():
        assert row["description"]
        assert isinstance(row["data_shape"], dict)
        assert row["data_shape"]
    assert types["threat.detected"]["description"] == "Malicious activity detected"
    assert set(types["threat.detected"]["data_shape"]) >= {"threat_id", "severity", "agent", "mcp_server", "details"}
    assert set(types["server.approved"]["data_shape"]) >= {"server_id", "name", "identity_hash", "approved_by"}


# --- Errors for paths and methods ----------------------------------------------------------


@pytest.mark.parametrize("path", ["/ui/api/nothing-here", "/ui/api/webhooks/whk_1/unknown", "/ui/api/"])
def test_unknown_api_path_answers_json_404(api, path):
    _assert_error(api.get(path), 404, "not_found")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("delete", "/ui/api/webhooks"),
        ("put", "/ui/api/webhooks"),
        ("post", "/ui/api/event-types"),
        ("get", "/ui/api/events"),
        ("get", "/ui/api/webhooks/test"),
        ("post", "/ui/api/webhooks/{id}"),
        ("get", "/ui/api/webhooks/{id}/rotate-secret"),
        ("post", "/ui/api/webhooks/{id}/deliveries"),
    ],
)
def test_wrong_method_answers_json_405(api, method, path):
    created = _create(api).json()
    response = getattr(api, method)(path.format(id=created["id"]), format="json")
    _assert_error(response, 405, "method_not_allowed")


def test_error_bodies_are_json_objects_when_anything_fails(api):
    for response in [
        api.get("/ui/api/webhooks/whk_nope"),
        _create(api, url="ftp://x"),
        APIClient().get("/ui/api/webhooks"),
    ]:
        body = json.loads(response.content)
        assert set(body) <= {"error", "message", "fields"}


# --- The webhook quota ---------------------------------------------------------------------


def test_create_webhook_answers_409_when_organization_has_its_most_webhooks(api, tenant, other_tenant, settings):
    settings.WEBHOOK_MAX_PER_ORGANIZATION = 3
    for _ in range(3):
        assert _create(api).status_code == 201

    body = _assert_error(_create(api), 409, "conflict")

    assert "reached its limit of 3 webhooks" in body["message"]
    assert "WEBHOOK_MAX_PER_ORGANIZATION" in body["message"]
    assert Webhook.objects.filter(organization=tenant.organization).count() == 3
    assert _create(api_client(other_tenant.key)).status_code == 201  # the quota is per organization
    webhook_id = Webhook.objects.filter(organization=tenant.organization).first().id
    assert api.delete(f"/ui/api/webhooks/{webhook_id}").status_code == 204
    assert _create(api).status_code == 201  # room again after a delete
