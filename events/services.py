"""``emit()`` and ``emit_many()``: the doors in for producers (``from events import emit, emit_many``).

``emit()`` is ``emit_many()`` of one: one code path stores a single event or a batch, with its
deliveries, in one query string (one round trip, one durable commit), all or nothing.

``build_event`` validates and serializes an event without storing it (test events use it
too): every door in — ``emit()``, ``emit_many()``, ``POST /ui/api/events`` and its batch,
``emit_event`` — passes through it, so each refuses the same data. Storing the events'
deliveries is the delivery app's part, registered in ``events.hooks``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError
from django.utils import timezone

from events import catalogue, schemas
from events.encoding import check_json_value, iso_timestamp, js_dumps
from events.hooks import EventStatement, registered_fan_out
from events.models import Event
from webhooks.models import Organization
from webhooks_project.db import savepoint_if_in_transaction
from webhooks_project.ids import new_id

# The events' own SQL, handed to the registered fan-out (events.hooks), which runs it with the
# deliveries' INSERT in one query string: the events are stored with their deliveries, or none.
# One row of parameters per event (for one event, the statement emit() always sent).
_INSERT_EVENTS_SQL = (
    "INSERT INTO events_event (id, organization_id, type, payload, created_at, idempotency_key) VALUES "
)
_EVENT_ROW_SQL = "(%s, %s, %s, %s, %s, %s)"
# A key older than the window is free again.
_FREE_OLD_KEYS_SQL = (
    "UPDATE events_event SET idempotency_key = NULL"
    " WHERE organization_id = %s AND idempotency_key = ANY(%s::text[]) AND created_at < %s"
)
# What one item of a batch may hold.
_ITEM_FIELDS = ("event", "data", "idempotency_key")
# The column's length: the one place the limit is written.
_MAX_IDEMPOTENCY_KEY = Event._meta.get_field("idempotency_key").max_length


class EmitError(ValueError):
    """The event was refused; nothing was stored. ``field`` names the offending input, and
    ``fields`` every one at fault (``{"data.severity": [message]}``), ``field`` first."""

    def __init__(self, field: str, message: str, *, fields: dict[str, list[str]] | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.message = message
        self.fields = fields or {field: [message]}
        # Which item of a batch was refused (its position), if a batch's.
        self.item: int | None = None

    def within(self, prefix: str, item: int) -> EmitError:
        """The same refusal of a batch's ``item``, its fields named from the batch
        (``events[3].`` + ``data.severity``; the item itself when its field is "")."""
        if not prefix:
            return self

        def name(field: str) -> str:
            return prefix + field if field else prefix.rstrip(".")

        refused = EmitError(
            name(self.field),
            self.message,
            fields={name(field): messages for field, messages in self.fields.items()},
        )
        refused.item = item
        return refused


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
    item = {"event": event_type, "data": data, "idempotency_key": idempotency_key}
    return _emit(_org_id(organization), [item], _no_prefix)[0]


def emit_many(organization: Organization | str, events: Sequence[Mapping[str, Any]]) -> list[Event]:
    """Store events and all their deliveries in one round trip and one durable transaction; wake
    each webhook once after commit. Returns the events in the order given.

    Each item is ``{"event": type, "data": {...}, "idempotency_key": str}`` (the key optional),
    at most WEBHOOK_BATCH_MAX_EVENTS of them. All or nothing: one invalid item refuses the
    batch, storing nothing, with an ``EmitError`` naming it (``events[3].data.severity``). An
    item whose key the organization used within WEBHOOK_IDEMPOTENCY_WINDOW, or an earlier
    item of the batch used, returns that original event and stores nothing new.
    """
    if isinstance(events, (str, bytes, Mapping)) or not isinstance(events, Sequence):
        raise EmitError("events", "Must be a list of events.")
    check_batch_size(len(events))
    return _emit(_org_id(organization), events, _batch_prefix)


def check_batch_size(count: int) -> None:
    """Refuse a batch longer than WEBHOOK_BATCH_MAX_EVENTS (the REST batch checks it before
    charging the caller's event limit)."""
    if count > settings.WEBHOOK_BATCH_MAX_EVENTS:
        raise EmitError(
            "events",
            f"{count} events is more than WEBHOOK_BATCH_MAX_EVENTS ({settings.WEBHOOK_BATCH_MAX_EVENTS});"
            " send them in several batches.",
        )


def _org_id(organization: Organization | str) -> str:
    return organization.id if isinstance(organization, Organization) else str(organization)


def _no_prefix(position: int) -> str:
    return ""


def _batch_prefix(position: int) -> str:
    return f"events[{position}]."


def _emit(
    org_id: str, items: Sequence[Mapping[str, Any]], prefix: Callable[[int], str], *, retry: bool = True
) -> list[Event]:
    parsed = []
    for position, item in enumerate(items):
        try:
            parsed.append(_parse_item(item))
        except EmitError as exc:
            raise exc.within(prefix(position), position) from None
    keys = [key for _, _, key in parsed if key is not None]
    originals = _recent_events(org_id, keys) if keys else {}
    result: list[Event] = []
    new: list[Event] = []
    for position, (event_type, data, key) in enumerate(parsed):
        if key is not None and key in originals:  # a repeat, of an earlier batch or of this one
            result.append(originals[key])
            continue
        try:
            event = build_event(org_id, event_type, data)
        except EmitError as exc:
            raise exc.within(prefix(position), position) from None
        event.idempotency_key = key
        if key is not None:
            originals[key] = event
        new.append(event)
        result.append(event)
    if not new:
        return result
    try:
        _store(org_id, new)
    except IntegrityError as exc:
        if retry and keys and _recent_events(org_id, keys):
            # A concurrent emit stored one of the keys first: answer with its events now.
            return _emit(org_id, items, prefix, retry=False)
        if not Organization.objects.filter(id=org_id).exists():
            raise EmitError("organization", f"Unknown organization {org_id!r}.") from exc
        raise
    return result


def _parse_item(item: Any) -> tuple[str, Any, str | None]:
    """(type, data, idempotency key) of one item; its data is checked by build_event."""
    if not isinstance(item, Mapping):
        raise EmitError("", "Must be an object with event and data.")
    for name in item:
        if name not in _ITEM_FIELDS:
            raise EmitError(name, "Unknown field: an event has event, data and idempotency_key.")
    for name in ("event", "data"):
        if name not in item:
            raise EmitError(name, "This field is required.")
    event_type = item["event"]
    if not isinstance(event_type, str):
        raise EmitError("event", "Must be a string.")
    key = item.get("idempotency_key")
    if key is not None and not (isinstance(key, str) and 0 < len(key) <= _MAX_IDEMPOTENCY_KEY):
        raise EmitError("idempotency_key", f"Must be 1 to {_MAX_IDEMPOTENCY_KEY} characters.")
    if key is not None and "\x00" in key:  # PostgreSQL's text cannot hold it
        raise EmitError("idempotency_key", "Must not contain the NUL character (\\u0000).")
    return event_type, item["data"], key


def _store(org_id: str, events: list[Event]) -> None:
    """The events and their deliveries, one query string through the registered fan-out."""
    sql = _INSERT_EVENTS_SQL + ", ".join([_EVENT_ROW_SQL] * len(events))
    params: list[object] = [
        value
        for event in events
        for value in (event.id, org_id, event.type, event.payload, event.created_at, event.idempotency_key)
    ]
    keys = [event.idempotency_key for event in events if event.idempotency_key is not None]
    if keys:
        window = timedelta(seconds=settings.WEBHOOK_IDEMPOTENCY_WINDOW)
        sql = f"{_FREE_OLD_KEYS_SQL};\n{sql}"
        params = [org_id, keys, events[0].created_at - window, *params]
    # The fan-out's one query string is its own transaction, or a savepoint in the caller's.
    with savepoint_if_in_transaction():
        registered_fan_out()(events=events, store_events=EventStatement(sql, params))


def _recent_events(org_id: str, keys: list[str]) -> dict[str, Event]:
    """The organization's events within WEBHOOK_IDEMPOTENCY_WINDOW that hold one of ``keys``."""
    since = timezone.now() - timedelta(seconds=settings.WEBHOOK_IDEMPOTENCY_WINDOW)
    found = Event.objects.filter(organization_id=org_id, idempotency_key__in=keys, created_at__gte=since)
    return {event.idempotency_key: event for event in found if event.idempotency_key is not None}
