"""emit() in process: what it stores, atomically, and the ids PostgreSQL makes for it."""

from __future__ import annotations

import inspect
import pydoc
import re
import time
from datetime import timedelta

import pytest
from conftest import make_webhook
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError, connection, transaction

import events
from deliveries.models import Delivery
from events import emit, hooks
from events.models import Event
from events.services import EmitError
from webhooks.models import Organization
from webhooks_project.ids import new_id

pytestmark = pytest.mark.django_db(transaction=True)

_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"


def _milliseconds(public_id: str) -> int:
    value = 0
    for char in public_id.split("_", 1)[1]:
        value = value * 32 + _CROCKFORD.index(char)
    return value >> 80


def test_sql_new_id_has_the_format_and_clock_of_python_ids():
    before = int(time.time() * 1000)
    with connection.cursor() as cursor:
        cursor.execute("SELECT new_id('dlv') FROM generate_series(1, 1000)")
        made = [row[0] for row in cursor.fetchall()]
    after = int(time.time() * 1000)

    assert all(re.fullmatch(r"dlv_[0-9a-hjkmnp-tv-z]{26}", made_id) for made_id in made)
    assert len(set(made)) == 1000
    assert all(before <= _milliseconds(made_id) <= after for made_id in made)
    assert re.fullmatch(r"dlv_[0-9a-hjkmnp-tv-z]{26}", new_id("dlv"))
    assert before <= _milliseconds(new_id("dlv")) <= int(time.time() * 1000)


def test_events_emit_is_the_real_function_with_its_signature_and_docstring():
    from events import services

    assert events.emit is services.emit
    assert list(inspect.signature(events.emit).parameters) == ["organization", "event_type", "data", "idempotency_key"]
    shown = pydoc.render_doc(events.emit, renderer=pydoc.plaintext)  # what help(events.emit) prints
    assert "emit(organization: " in shown
    assert "idempotency_key: 'str | None' = None" in shown
    assert "Store an event and its deliveries" in shown


def test_emit_refuses_and_stores_nothing_when_no_fan_out_is_registered(tenant, monkeypatch):
    monkeypatch.setattr(hooks, "_fan_out", None)

    with pytest.raises(ImproperlyConfigured, match="'deliveries' must be in INSTALLED_APPS"):
        emit(tenant.organization, "test.ping", {})

    assert not Event.objects.exists()


@pytest.fixture
def deliveries_refused():
    """Every INSERT into deliveries_delivery fails, as a full disk or a bad migration would."""
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS"
            " $$ BEGIN RAISE EXCEPTION 'deliveries unavailable'; END $$;"
            " CREATE TRIGGER refuse BEFORE INSERT ON deliveries_delivery FOR EACH ROW EXECUTE FUNCTION refuse()"
        )
    yield
    with connection.cursor() as cursor:
        cursor.execute("DROP TRIGGER refuse ON deliveries_delivery; DROP FUNCTION refuse()")


def test_emit_stores_no_event_when_its_deliveries_cannot_be_stored(tenant, receiver, redis_client, deliveries_refused):
    make_webhook(tenant.organization, receiver.url())

    with pytest.raises(DatabaseError, match="deliveries unavailable"):
        emit(tenant.organization, "test.ping", {"message": "lost?"})

    assert not Event.objects.exists()
    assert redis_client.keys("*wake*") == []


def test_emit_leaves_the_callers_transaction_usable_when_it_fails(tenant, receiver, redis_client, deliveries_refused):
    make_webhook(tenant.organization, receiver.url())

    with transaction.atomic():
        with pytest.raises(DatabaseError, match="deliveries unavailable"):
            emit(tenant.organization, "test.ping", {"message": "lost?"})
        Organization.objects.filter(id=tenant.organization.id).update(name="Renamed")  # still usable

    assert Organization.objects.get(id=tenant.organization.id).name == "Renamed"
    assert not Event.objects.exists()


def test_emit_refuses_and_stores_nothing_when_organization_unknown(redis_client):
    with pytest.raises(EmitError) as refused:
        emit("org_doesnotexist", "test.ping", {"message": "hi"})

    assert refused.value.field == "organization"
    assert not Event.objects.exists()


def test_emit_takes_an_idempotency_key_again_when_its_window_has_passed(tenant, receiver, redis_client, settings):
    webhook = make_webhook(tenant.organization, receiver.url()).webhook
    first = emit(tenant.organization, "test.ping", {"message": "1"}, idempotency_key="k-1")
    assert emit(tenant.organization, "test.ping", {"message": "1"}, idempotency_key="k-1").id == first.id
    Event.objects.filter(id=first.id).update(
        created_at=first.created_at - timedelta(seconds=settings.WEBHOOK_IDEMPOTENCY_WINDOW + 1)
    )

    second = emit(tenant.organization, "test.ping", {"message": "2"}, idempotency_key="k-1")

    assert second.id != first.id
    assert Event.objects.get(id=second.id).idempotency_key == "k-1"
    assert Event.objects.get(id=first.id).idempotency_key is None
    assert Delivery.objects.filter(webhook=webhook).count() == 2
