"""``emit()``: the one door in for producers (``from events import emit``).

``build_event`` validates and serializes an event without storing it (test events use it
too): every door in — ``emit()``, ``POST /ui/api/events``, ``emit_event`` — passes through it, so
each refuses the same data. Storing the event's deliveries is the delivery app's part,
registered in ``events.hooks``.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from events import catalogue, schemas
from events.encoding import check_json_value, iso_timestamp, js_dumps
from events.hooks import EventStatement, registered_fan_out
from events.models import Event
from webhooks.models import Organization
from webhooks_project.ids import new_id

# The event's own SQL, handed to the registered fan-out (events.hooks), which runs it with the
# deliveries' INSERT in one query string: the event is stored with its deliveries, or neither.
_INSERT_EVENT_SQL = (
    "INSERT INTO events_event (id, organization_id, type, payload, created_at, idempotency_key)"
    " VALUES (%s, %s, %s, %s, %s, %s)"
)
_FREE_OLD_KEY_SQL = (
    "UPDATE events_event SET idempotency_key = NULL"
    " WHERE organization_id = %s AND idempotency_key = %s AND created_at < %s"
)


class EmitError(ValueError):
    """The event was refused; nothing was stored. ``field`` names the offending input, and
    ``fields`` every one at fault (``{"data.severity": [message]}``), ``field`` first."""

    def __init__(self, field: str, message: str, *, fields: dict[str, list[str]] | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.message = message
        self.fields = fields or {field: [message]}


# The WEBHOOK_EVENT_VALIDATION that lets data through unchecked (settings.py allows it and "enforce").
VALIDATION_OFF = "off"


# The envelope adds id, type, timestamp and organization around ``data``.
_ENVELOPE_ALLOWANCE = 512


def build_event(org_id: str, event_type: str, data: dict[str, Any]) -> Event:
    """Validate and serialize an event, unsaved: its payload is the exact body to send."""
    if not catalogue.is_known(event_type):
        raise EmitError("event", catalogue.unknown_type_message(event_type))
    if not isinstance(data, dict):
        raise EmitError("data", "Must be a JSON object.")
    try:
        check_json_value(data, max_depth=settings.JSON_MAX_DEPTH)
    except ValueError as exc:
        raise EmitError("data", str(exc)) from exc
    check_data(event_type, data)
    now = timezone.now()
    event_id = new_id("evt")
    envelope = {
        "id": event_id,
        "event": event_type,
        "timestamp": iso_timestamp(now),
        "organization_id": org_id,
        "data": data,
    }
    payload = js_dumps(envelope)
    if len(payload.encode("utf-8")) > settings.WEBHOOK_MAX_PAYLOAD_BYTES + _ENVELOPE_ALLOWANCE:
        raise EmitError("data", f"The payload exceeds {settings.WEBHOOK_MAX_PAYLOAD_BYTES} bytes.")
    return Event(id=event_id, organization_id=org_id, type=event_type, payload=payload, created_at=now)


def check_data(event_type: str, data: dict[str, Any]) -> None:
    """Raise EmitError naming each path where ``data`` breaks the type's JSON Schema
    (``events.schemas``), unless WEBHOOK_EVENT_VALIDATION is off."""
    if settings.WEBHOOK_EVENT_VALIDATION == VALIDATION_OFF:
        return
    errors = schemas.data_errors(event_type, data)
    if errors:
        field, (message, *_) = next(iter(errors.items()))
        raise EmitError(field, message, fields=errors)


def emit(
    organization: Organization | str,
    event_type: str,
    data: dict[str, Any],
    *,
    idempotency_key: str | None = None,
) -> Event:
    """Store an event and its deliveries in one durable transaction; wake the senders after commit.

    With ``idempotency_key``, a repeat from the same organization within
    WEBHOOK_IDEMPOTENCY_WINDOW returns the original event and emits nothing new.
    """
    org_id = organization.id if isinstance(organization, Organization) else str(organization)
    if idempotency_key is not None and not (0 < len(idempotency_key) <= 255):
        raise EmitError("idempotency_key", "Must be 1 to 255 characters.")
    if idempotency_key:
        original = _recent_event(org_id, idempotency_key)
        if original is not None:
            return original

    event = build_event(org_id, event_type, data)
    event.idempotency_key = idempotency_key or None
    sql = _INSERT_EVENT_SQL
    params: list[object] = [event.id, org_id, event.type, event.payload, event.created_at, event.idempotency_key]
    if idempotency_key:
        # A key older than the window is free again.
        sql = f"{_FREE_OLD_KEY_SQL};\n{sql}"
        window = timedelta(seconds=settings.WEBHOOK_IDEMPOTENCY_WINDOW)
        params = [org_id, idempotency_key, event.created_at - window, *params]
    try:
        # In autocommit mode the fan-out's one query string is its own implicit transaction;
        # inside the caller's transaction, a savepoint keeps a refused event from breaking it.
        with contextlib.nullcontext() if transaction.get_autocommit() else transaction.atomic():
            registered_fan_out()(event=event, store_event=EventStatement(sql, params))
    except IntegrityError as exc:
        if idempotency_key:
            original = _recent_event(org_id, idempotency_key)
            if original is not None:  # a concurrent repeat won the race
                return original
        if not Organization.objects.filter(id=org_id).exists():
            raise EmitError("organization", f"Unknown organization {org_id!r}.") from exc
        raise
    return event


def _recent_event(org_id: str, idempotency_key: str) -> Event | None:
    since = timezone.now() - timedelta(seconds=settings.WEBHOOK_IDEMPOTENCY_WINDOW)
    return Event.objects.filter(organization_id=org_id, idempotency_key=idempotency_key, created_at__gte=since).first()
