"""Error messages that say what to do: each one a new user meets in the first week, as the
API answers it, and the rule that no message repeats the field it is filed under."""

from __future__ import annotations

import re

import pytest
from conftest import ROOT, make_webhook
from rest_framework.test import APIClient

from events import catalogue

pytestmark = pytest.mark.django_db

PUBLIC_URL = "https://93.184.216.34/hook"
VALID_TYPES = ", ".join(catalogue.names())


def _error(response, status: int) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    return response.json()


def test_refused_address_says_why_and_what_to_do(api, settings):
    settings.WEBHOOK_ALLOWED_NETWORKS = []  # production: nothing exempt

    body = _error(api.post("/ui/api/webhooks", {"url": "http://10.0.0.5/hook", "events": ["*"]}, format="json"), 400)

    assert body["message"] == "url: 10.0.0.5 is a private address; webhook URLs must reach a publicly routable host."
    # The README says how to deliver to one's own network while developing.
    security = (ROOT / "README.md").read_text(encoding="utf-8").split("## Security", 1)[1].split("\n## ", 1)[0]
    first_bullet = security.split("\n* ")[1]
    assert "publicly" in first_bullet
    assert "routable host" in first_bullet
    assert "`WEBHOOK_ALLOWED_NETWORKS`" in first_bullet


@pytest.mark.parametrize("authorization", [None, "Basic dXNlcjpwYXNz", "Bearer", "cck_12345678_no_scheme"])
def test_missing_or_malformed_authorization_says_how_to_send_the_key(db, authorization):
    client = APIClient()
    if authorization is not None:
        client.credentials(HTTP_AUTHORIZATION=authorization)

    body = _error(client.get("/ui/api/webhooks"), 401)

    assert body == {"error": "unauthorized", "message": "Send your API key as 'Authorization: Bearer <key>'."}


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", ""])
def test_body_that_is_not_json_by_content_type_says_to_send_json(api, content_type):
    response = api.generic("POST", "/ui/api/webhooks", b'{"url": "x"}', content_type=content_type)

    body = _error(response, 415)

    assert body == {
        "error": "unsupported_media_type",
        "message": "Send a JSON body with Content-Type: application/json.",
    }


def test_test_event_with_unknown_type_lists_the_valid_types_like_emit(api, tenant):
    webhook = make_webhook(tenant.organization, PUBLIC_URL).webhook
    expected = f"Unknown event type 'threat.found'. Valid types: {VALID_TYPES}."

    test_event = api.post("/ui/api/webhooks/test", {"webhook_id": webhook.id, "event": "threat.found"}, format="json")
    emitted = api.post("/ui/api/events", {"event": "threat.found", "data": {}}, format="json")
    history = api.get(f"/ui/api/webhooks/{webhook.id}/deliveries", {"event": "threat.found"})

    for response in (test_event, emitted, history):
        body = _error(response, 400)
        assert body["message"] == f"event: {expected}"
        assert body["fields"] == {"event": [expected]}


def test_test_event_with_unknown_webhook_id_names_that_field(api):
    body = _error(api.post("/ui/api/webhooks/test", {"webhook_id": "whk_nope"}, format="json"), 404)

    message = "No webhook 'whk_nope' in this organization (GET /ui/api/webhooks lists them)."
    assert body == {"error": "not_found", "message": f"webhook_id: {message}", "fields": {"webhook_id": [message]}}


def _bad_requests(api, webhook_id: str) -> dict[str, object]:
    """One request per message a field can get, each wrong in one way."""
    hook = f"/ui/api/webhooks/{webhook_id}"
    create = "/ui/api/webhooks"
    return {
        "data not an object": api.post("/ui/api/events", {"event": "test.ping", "data": [1]}, format="json"),
        "idempotency key too long": api.post(
            "/ui/api/events", {"event": "test.ping", "data": {}}, format="json", HTTP_IDEMPOTENCY_KEY="k" * 256
        ),
        "url not http": api.post(create, {"url": "ftp://example.com/x", "events": ["*"]}, format="json"),
        "url too long": api.post(create, {"url": PUBLIC_URL + "x" * 2048, "events": ["*"]}, format="json"),
        "url with credentials": api.post(create, {"url": "https://a:b@example.com/", "events": ["*"]}, format="json"),
        "url with a space": api.post(create, {"url": "https://example.com/a b", "events": ["*"]}, format="json"),
        "url with a bad IPv6 host": api.post(create, {"url": "http://[::zz]/", "events": ["*"]}, format="json"),
        "events empty": api.post(create, {"url": PUBLIC_URL, "events": []}, format="json"),
        "secret too short": api.post(create, {"url": PUBLIC_URL, "events": ["*"], "secret": "short"}, format="json"),
        "secret on update": api.patch(hook, {"secret": "a-new-secret-123"}, format="json"),
        "stats window too long": api.get(f"{hook}/stats", {"window": "99999d"}),
        "recover without since": api.post(f"{hook}/recover", {}, format="json"),
        "rotate with a bad overlap": api.post(f"{hook}/rotate-secret", {"expire_previous_in": -1}, format="json"),
    }


def test_no_message_repeats_the_field_it_is_filed_under(api, tenant):
    webhook = make_webhook(tenant.organization, PUBLIC_URL).webhook

    for case, response in _bad_requests(api, webhook.id).items():
        body = _error(response, 400)
        for field, messages in body["fields"].items():
            name = field.rsplit(".", 1)[-1].replace("_", " ")
            for message in messages:
                first_words = message.lower().replace("-", " ").replace("_", " ")
                assert not re.match(rf"(the |this )?{re.escape(name)}\b", first_words), (case, field, message)
