"""``python manage.py emit_event org_… threat.detected --data '{…}'``: emit an event from a shell;
``emit_event org_… --file events.jsonl`` for a bulk load, in batches (``emit_many``)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import IO, Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from events import services
from events.encoding import parse_json_object
from webhooks.models import Organization


class Command(BaseCommand):
    help = (
        "Emit an event for an organization; prints the event id (evt_…) on the last line. With --file,"
        ' emit every line of a JSON Lines file ({"event", "data", "idempotency_key"?} each) in'
        " batches of WEBHOOK_BATCH_MAX_EVENTS, printing one id per line."
    )

    def add_arguments(self, parser):
        parser.add_argument("organization_id")
        parser.add_argument("event_type", nargs="?", help="The event's type (not with --file).")
        parser.add_argument("--data", default="{}", help="The event's data, a JSON object.")
        parser.add_argument("--idempotency-key", default=None)
        parser.add_argument(
            "--file",
            default=None,
            help="A JSON Lines file of events ('-' for standard input); every line is checked before any is stored.",
        )

    def handle(self, *args, organization_id: str, event_type, data: str, idempotency_key, file, **options):
        # Checked up front: inside an outer transaction the foreign key would only fail at commit.
        if not Organization.objects.filter(id=organization_id).exists():
            raise CommandError(f"No organization {organization_id!r}.")
        if file is not None:
            if event_type is not None:
                raise CommandError("Give either an event type or --file, not both.")
            self._emit_file(organization_id, file)
            return
        if event_type is None:
            raise CommandError("Give an event type (or --file).")
        try:
            payload = parse_json_object(data)
        except ValueError as exc:
            raise CommandError(f"--data: {exc}") from exc
        try:
            event = services.emit(organization_id, event_type, payload, idempotency_key=idempotency_key)
        except services.EmitError as exc:
            raise CommandError(_problems(exc.fields)) from exc
        self.stdout.write(event.id)

    def _emit_file(self, organization_id: str, path: str) -> None:
        if path == "-":
            items = list(_read_lines(sys.stdin))
        else:
            try:
                with open(path, encoding="utf-8") as lines:
                    items = list(_read_lines(lines))
            except OSError as exc:
                raise CommandError(f"--file: {exc}") from exc
        size = settings.WEBHOOK_BATCH_MAX_EVENTS
        stored = 0
        for start in range(0, len(items), size):
            batch = items[start : start + size]
            try:
                events = services.emit_many(organization_id, [item for _, item in batch])
            except services.EmitError as exc:
                if exc.item is None:
                    raise CommandError(_problems(exc.fields)) from exc
                prefix = f"events[{exc.item}]."
                fields = {field.removeprefix(prefix): messages for field, messages in exc.fields.items()}
                kept = f"the {stored} events before it were stored, " if stored else ""
                raise CommandError(
                    f"line {batch[exc.item][0]}: {_problems(fields)} ({kept}nothing from line {batch[0][0]} on was)"
                ) from exc
            stored += len(events)
            for event in events:
                self.stdout.write(event.id)


def _read_lines(lines: IO[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, parsed object) of every non-blank line; a line that is not a JSON object
    stops the load before anything is stored."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            yield number, parse_json_object(line)
        except ValueError as exc:
            raise CommandError(f"line {number}: {exc}") from exc


def _problems(fields: dict[str, list[str]]) -> str:
    return "; ".join(f"{field}: {message}" for field, messages in fields.items() for message in messages)
