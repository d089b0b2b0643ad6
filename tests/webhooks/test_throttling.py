"""Requests and events one API key may send: 429 with Retry-After past the rates, per key,
counted on the real Redis; unthrottled (with a warning) when Redis is down."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest
from conftest import api_client, wait_until
from rest_framework.exceptions import Throttled

from events.models import Event
from webhooks.authentication import ApiPrincipal
from webhooks.throttling import EVENTS_KEY_PREFIX, charge_events, parse_rate
from webhooks_project.redis import get_redis

pytestmark = pytest.mark.django_db

NOWHERE = "redis://127.0.0.1:1/0"  # nothing listens there


def _emit(client, **data):
    return client.post(
        "/ui/api/events", {"event": "agent.online", "data": {"agent_id": "agt_1", **data}}, format="json"
    )


def _as_caller(tenant) -> SimpleNamespace:
    """What charge_events reads of a DRF request: the authenticated principal."""
    from webhooks.models import ApiKey

    api_key = ApiKey.objects.get(organization=tenant.organization)
    return SimpleNamespace(user=ApiPrincipal(organization=tenant.organization, api_key_id=api_key.id))


def _assert_throttled(response) -> int:
    assert response.status_code == 429, response.content
    body = response.json()
    assert body["error"] == "rate_limited"
    assert "Expected available in" in body["message"]
    wait = int(response["Retry-After"])
    assert wait >= 1
    return wait


def test_requests_get_429_with_retry_after_when_a_key_exceeds_api_throttle_rate(
    api, settings, redis_client, other_tenant
):
    settings.API_THROTTLE_RATE = "3/min"
    for _ in range(3):
        assert api.get("/ui/api/webhooks").status_code == 200

    wait = _assert_throttled(api.get("/ui/api/webhooks"))

    assert wait <= 60
    _assert_throttled(api.post("/ui/api/webhooks", {}, format="json"))  # every endpoint shares the count
    # Another organization's key has its own count.
    assert api_client(other_tenant.key).get("/ui/api/webhooks").status_code == 200


def test_requests_pass_again_when_the_window_has_slid(api, settings, redis_client):
    settings.API_THROTTLE_RATE = "2/s"
    assert api.get("/ui/api/event-types").status_code == 200
    assert api.get("/ui/api/event-types").status_code == 200
    _assert_throttled(api.get("/ui/api/event-types"))

    wait_until(lambda: api.get("/ui/api/event-types").status_code == 200, timeout=5, message="still throttled")


def test_events_are_throttled_by_their_own_rate_when_requests_are_limited(api, tenant, settings, redis_client):
    settings.API_THROTTLE_RATE = "1/min"
    settings.API_EVENTS_THROTTLE_RATE = "3/min"
    for n in range(3):
        assert _emit(api, n=n).status_code == 202

    _assert_throttled(_emit(api, n=3))

    assert Event.objects.filter(organization=tenant.organization).count() == 3  # the refused one stored nothing


def test_charge_events_counts_a_batch_as_its_events_all_or_none_when_it_does_not_fit(tenant, settings, redis_client):
    settings.API_EVENTS_THROTTLE_RATE = "5/min"
    caller = _as_caller(tenant)
    charge_events(caller, 3)

    with pytest.raises(Throttled) as refused:
        charge_events(caller, 3)

    assert 1 <= refused.value.wait <= 60
    charge_events(caller, 2)  # the refused batch took nothing
    with pytest.raises(Throttled):
        charge_events(caller, 1)
    assert redis_client.zcard(EVENTS_KEY_PREFIX + caller.user.api_key_id) == 5


def test_charge_events_fits_again_when_the_oldest_have_left_the_window(tenant, settings, redis_client):
    settings.API_EVENTS_THROTTLE_RATE = "4/s"
    caller = _as_caller(tenant)
    charge_events(caller, 4)
    with pytest.raises(Throttled):
        charge_events(caller, 2)

    def fits() -> bool:
        try:
            charge_events(caller, 2)
        except Throttled:
            return False
        return True

    wait_until(fits, timeout=5, message="two events never fitted again")


def test_charge_events_refuses_without_retry_after_when_a_batch_exceeds_the_whole_rate(tenant, settings, redis_client):
    settings.API_EVENTS_THROTTLE_RATE = "5/min"

    with pytest.raises(Throttled, match="send fewer") as refused:
        charge_events(_as_caller(tenant), 6)

    assert refused.value.wait is None


def test_events_are_not_throttled_when_the_rate_is_empty(tenant, settings, redis_client):
    settings.API_EVENTS_THROTTLE_RATE = ""
    caller = _as_caller(tenant)
    for _ in range(3):
        charge_events(caller, 10_000)
    assert redis_client.dbsize() == 0


@pytest.fixture
def redis_down(settings):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": NOWHERE}}
    settings.REDIS_URL = NOWHERE
    get_redis.cache_clear()
    yield
    get_redis.cache_clear()


def test_api_works_unthrottled_with_a_warning_when_redis_is_down(api, tenant, settings, redis_down, caplog):
    settings.API_THROTTLE_RATE = "1/min"
    settings.API_EVENTS_THROTTLE_RATE = "1/min"
    caplog.set_level(logging.WARNING, logger="webhooks.throttling")

    for _ in range(3):
        assert api.get("/ui/api/webhooks").status_code == 200
    for _ in range(2):
        charge_events(_as_caller(tenant), 1)

    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "redis unavailable: API requests are not being throttled" in warnings
    assert "redis unavailable: events sent over the API are not being throttled" in warnings


def test_throttled_responses_are_documented_with_retry_after_when_schema_is_fetched(client):
    schema = client.get("/ui/api/schema", HTTP_ACCEPT="application/json").json()

    for path in ("/ui/api/webhooks", "/ui/api/events"):
        for operation in schema["paths"][path].values():
            assert "Retry-After" in operation["responses"]["429"]["headers"]


@pytest.mark.parametrize(
    ("rate", "parsed"), [("1200/min", (1200, 60)), ("10/s", (10, 1)), ("5/hour", (5, 3600)), ("", None)]
)
def test_parse_rate_reads_drf_rates_when_given_any_period(rate, parsed):
    assert parse_rate(rate) == parsed


def test_parse_rate_refuses_when_rate_is_malformed():
    with pytest.raises(ValueError, match="count"):
        parse_rate("lots")
