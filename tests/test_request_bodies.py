"""What one API request body may cost: every JSON body is refused with a 400 naming the limit
when nested deeper than JSON_MAX_DEPTH or holding more than JSON_MAX_VALUES values, before
anything else walks it; emit()'s data has the same depth limit."""

from __future__ import annotations

import pytest
from conftest import make_webhook

from events.models import Event
from events.services import EmitError, build_event
from webhooks.models import Webhook

pytestmark = pytest.mark.django_db

PUBLIC_URL = "https://93.184.216.34/hook"


def nested_json(levels: int, leaf: str = "1") -> str:
    """An object nested ``levels`` deep, written out as text (json.dumps would recurse)."""
    return '{"a":' * levels + leaf + "}" * levels


def nested_dict(levels: int) -> dict:
    value: dict = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


def _post(api, path: str, text: str):
    return api.post(path, text, content_type="application/json")


def _assert_body_refused(response, *needles: str) -> None:
    assert response.status_code == 400, response.content[:300]
    body = response.json()
    assert body["error"] == "invalid_request"
    assert list(body["fields"]) == ["body"]
    for needle in needles:
        assert needle in body["message"], body["message"]


@pytest.fixture
def webhook(tenant):
    return make_webhook(tenant.organization, PUBLIC_URL).webhook


@pytest.mark.parametrize("levels", [1_000, 10_000])
def test_deep_bodies_are_400_naming_the_limit_when_sent_to_any_endpoint(api, webhook, levels):
    deep = nested_json(levels)
    paths = [
        "/ui/api/webhooks",
        "/ui/api/events",
        f"/ui/api/webhooks/{webhook.id}/rotate-secret",
        "/ui/api/webhooks/test",
        f"/ui/api/webhooks/{webhook.id}/recover",
    ]
    for path in paths:
        _assert_body_refused(_post(api, path, deep), "nested more than 64 levels", "JSON_MAX_DEPTH")
    _assert_body_refused(
        api.put(f"/ui/api/webhooks/{webhook.id}", deep, content_type="application/json"), "JSON_MAX_DEPTH"
    )
    assert not Event.objects.exists()
    assert Webhook.objects.count() == 1


def test_body_at_the_depth_limit_is_accepted_and_one_deeper_is_refused(api, settings):
    assert settings.JSON_MAX_DEPTH == 64
    # The body is one level, its "data" the other 63: {"event": …, "data": {"a": {…}}}.
    at_limit = '{"event":"test.ping","data":' + nested_json(62, "{}") + "}"
    too_deep = '{"event":"test.ping","data":' + nested_json(63, "{}") + "}"

    assert _post(api, "/ui/api/events", at_limit).status_code == 202
    _assert_body_refused(_post(api, "/ui/api/events", too_deep), "64")
    assert Event.objects.count() == 1


def test_body_with_more_values_than_the_limit_is_400_and_stores_nothing(api, settings):
    settings.JSON_MAX_VALUES = 1_000

    def body(zeros: int) -> str:  # the object, "event", "data", the list: 4 values + the zeros
        return '{"event":"test.ping","data":{"a":[' + ",".join(["0"] * zeros) + "]}}"

    assert _post(api, "/ui/api/events", body(996)).status_code == 202
    _assert_body_refused(_post(api, "/ui/api/events", body(997)), "more than 1000 values", "JSON_MAX_VALUES")
    assert Event.objects.count() == 1


def test_a_megabyte_of_tiny_values_is_refused_when_posted_with_the_default_limit(api, settings):
    text = '{"event":"test.ping","data":{"a":[' + ",".join(["0"] * 500_000) + "]}}"
    assert len(text) < settings.WEBHOOK_MAX_PAYLOAD_BYTES

    _assert_body_refused(_post(api, "/ui/api/events", text), f"more than {settings.JSON_MAX_VALUES} values")
    _assert_body_refused(_post(api, "/ui/api/webhooks", text), "JSON_MAX_VALUES")


def test_an_over_long_events_list_is_refused_without_judging_each_item(api):
    response = api.post("/ui/api/webhooks", {"url": PUBLIC_URL, "events": ["nope"] * 5_000}, format="json")

    assert response.status_code == 400
    assert response.json()["fields"] == {"events": ["Ensure this field has no more than 50 elements."]}


def test_unknown_fields_are_reported_up_to_twenty_when_a_body_has_many(api):
    body = {"url": PUBLIC_URL, "events": ["*"], **{f"extra{n:04d}": 0 for n in range(5_000)}}

    response = api.post("/ui/api/webhooks", body, format="json")

    assert response.status_code == 400
    fields = response.json()["fields"]
    assert list(fields) == [f"extra{n:04d}" for n in range(20)]
    assert not Webhook.objects.exists()


def test_emit_refuses_data_deeper_than_the_limit_when_called_in_process(tenant, settings):
    build_event(tenant.organization.id, "test.ping", nested_dict(64))

    for levels in (65, 10_000):
        with pytest.raises(EmitError) as refused:
            build_event(tenant.organization.id, "test.ping", nested_dict(levels))
        assert refused.value.field == "data"
        assert "nested more than 64 levels" in refused.value.message
