"""Organizations are isolated: every ``/ui/api/`` route and method given another
organization's webhook or delivery id answers 404 (never 403, never data) and changes nothing.

The matrix is read from the URLconf, so a route added later is covered without editing this.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
from conftest import api_client, make_delivery, make_webhook
from django.utils import timezone

from deliveries.models import Attempt, Delivery
from events.models import Event
from webhooks.models import Webhook
from webhooks_project.urls import api as api_patterns

pytestmark = pytest.mark.django_db


METHODS = ("get", "head", "post", "put", "patch", "delete")
# Bodies that would succeed against one's own webhook, so a missing scope check would act.
BODIES = {
    "put": {"enabled": False, "url": "https://93.184.216.35/stolen", "events": ["*"], "description": "pwned"},
    "patch": {"enabled": False},
    "post": {"since": "2000-01-01T00:00:00Z"},
}
BODY_BY_ROUTE = {"rotate-secret": {"secret": "attacker-chosen-secret"}, "retry": {}}


@dataclass(frozen=True)
class Route:
    template: str
    method: str

    def path(self, webhook_id: str, delivery_id: str = "") -> str:
        return "/" + self.template.replace("<str:webhook_id>", webhook_id).replace("<str:delivery_id>", delivery_id)

    @property
    def has_delivery(self) -> bool:
        return "<str:delivery_id>" in self.template

    def body(self) -> dict:
        last = self.template.rsplit("/", 1)[-1]
        return BODY_BY_ROUTE.get(last, BODIES.get(self.method, {}))


def _routes() -> list[Route]:
    routes = []
    for pattern in api_patterns:
        template = str(pattern.pattern)
        if "<str:webhook_id>" not in template:
            continue
        view_class = pattern.callback.view_class
        routes.extend(Route(template, m) for m in METHODS if hasattr(view_class, "get" if m == "head" else m))
    return routes


ROUTES = _routes()


@dataclass
class World:
    mine: Webhook
    my_delivery: Delivery
    theirs: Webhook
    their_secret: str
    their_delivery: Delivery


@pytest.fixture
def world(tenant, other_tenant) -> World:
    mine = make_webhook(tenant.organization, "https://93.184.216.34/mine", ["*"]).webhook
    created = make_webhook(other_tenant.organization, "https://93.184.216.36/theirs", ["*"], secret="their-secret-1234")
    their_delivery = make_delivery(
        created.webhook, status=Delivery.Status.FAILED, attempts=5, response_status=500, next_attempt_at=None
    )
    Attempt.objects.create(delivery=their_delivery, number=1, requested_at=timezone.now(), response_status=500)
    return World(
        mine=mine,
        my_delivery=make_delivery(mine, status=Delivery.Status.FAILED, attempts=5, next_attempt_at=None),
        theirs=created.webhook,
        their_secret=created.secret,
        their_delivery=their_delivery,
    )


def _snapshot(world: World) -> dict:
    """Everything of the other organization's that a leak could change."""
    org = world.theirs.organization_id
    return {
        "webhooks": list(Webhook.objects.filter(organization_id=org).values()),
        "deliveries": list(Delivery.objects.filter(organization_id=org).order_by("id").values()),
        "attempts": list(Attempt.objects.filter(delivery__organization_id=org).values()),
        "events": list(Event.objects.filter(organization_id=org).order_by("id").values()),
        "secrets": Webhook.objects.get(id=world.theirs.id).signing_secrets(),
    }


def _assert_not_found(response, world: World) -> None:
    assert response.status_code == 404, (response.status_code, response.content)
    if response.request["REQUEST_METHOD"] == "HEAD":
        return
    assert response.json()["error"] == "not_found"
    text = response.content.decode()
    for secret_or_data in (world.theirs.url, world.their_secret, world.their_delivery.event_id):
        assert secret_or_data not in text


def _call(api, route: Route, path: str):
    if route.method in ("get", "head", "delete"):
        return getattr(api, route.method)(path)
    return getattr(api, route.method)(path, route.body(), format="json")


def test_matrix_covers_every_webhook_route():
    templates = {route.template for route in ROUTES}
    for expected in [
        "ui/api/webhooks/<str:webhook_id>",
        "ui/api/webhooks/<str:webhook_id>/rotate-secret",
        "ui/api/webhooks/<str:webhook_id>/deliveries",
        "ui/api/webhooks/<str:webhook_id>/deliveries/<str:delivery_id>",
        "ui/api/webhooks/<str:webhook_id>/deliveries/<str:delivery_id>/payload",
    ]:
        assert expected in templates
    methods = {route.method for route in ROUTES if route.template == "ui/api/webhooks/<str:webhook_id>"}
    assert methods >= {"get", "put", "patch", "delete"}


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: f"{r.method.upper()} {r.template.removeprefix('ui/api/')}")
def test_route_answers_404_and_changes_nothing_when_webhook_of_other_organization(api, world, route):
    before = _snapshot(world)
    path = route.path(world.theirs.id, world.their_delivery.id)
    _assert_not_found(_call(api, route, path), world)
    assert _snapshot(world) == before


@pytest.mark.parametrize(
    "route",
    [r for r in ROUTES if r.has_delivery],
    ids=lambda r: f"{r.method.upper()} {r.template.removeprefix('ui/api/')}",
)
def test_route_answers_404_and_changes_nothing_when_delivery_of_other_organization(api, world, route):
    before = _snapshot(world)
    path = route.path(world.mine.id, world.their_delivery.id)
    _assert_not_found(_call(api, route, path), world)
    assert _snapshot(world) == before


@pytest.mark.parametrize("event", ["test.ping", "threat.detected"])
def test_send_test_event_answers_404_and_sends_nothing_when_webhook_of_other_organization(api, world, event):
    before = _snapshot(world)
    response = api.post("/ui/api/webhooks/test", {"webhook_id": world.theirs.id, "event": event}, format="json")
    _assert_not_found(response, world)
    assert _snapshot(world) == before
    assert not Delivery.objects.filter(webhook=world.mine).exclude(id=world.my_delivery.id).exists()


def test_own_routes_still_work_when_matrix_ids_are_mine(api, world):
    """The 404s above are about ownership, not broken routes: the same calls on one's own
    webhook and delivery succeed."""
    for route in ROUTES:
        if route.method in ("delete", "put", "patch", "post"):
            continue
        response = _call(api, route, route.path(world.mine.id, world.my_delivery.id))
        assert response.status_code == 200, (route, response.content)


def test_lists_never_include_other_organization_rows(api, world, other_tenant):
    webhooks = api.get("/ui/api/webhooks").json()["results"]
    assert [w["id"] for w in webhooks] == [world.mine.id]
    deliveries = api.get(f"/ui/api/webhooks/{world.mine.id}/deliveries").json()["results"]
    assert [d["id"] for d in deliveries] == [world.my_delivery.id]
    # The same ids, through the other organization's own key, are there: the rows exist.
    theirs = api_client(other_tenant.key)
    assert [w["id"] for w in theirs.get("/ui/api/webhooks").json()["results"]] == [world.theirs.id]
    assert theirs.get(f"/ui/api/webhooks/{world.theirs.id}").status_code == 200
    assert theirs.get(f"/ui/api/webhooks/{world.mine.id}").status_code == 404


def test_emitted_event_reaches_only_own_organization(api, world):
    response = api.post("/ui/api/events", {"event": "threat.blocked", "data": {"threat_id": "thr_1"}}, format="json")
    assert response.status_code == 202
    event = Event.objects.get(id=response.json()["id"])
    assert event.organization_id == world.mine.organization_id
    assert re.fullmatch(r"evt_[0-9a-z]{26}", event.id)
