"""``python manage.py emit_event org_… threat.detected --data '{…}'``: emit an event from a shell."""

from django.core.management.base import BaseCommand, CommandError

from events import services
from events.encoding import parse_json_object
from webhooks.models import Organization


class Command(BaseCommand):
    help = "Emit an event for an organization; prints the event id (evt_…) on the last line."

    def add_arguments(self, parser):
        parser.add_argument("organization_id")
        parser.add_argument("event_type")
        parser.add_argument("--data", default="{}", help="The event's data, a JSON object.")
        parser.add_argument("--idempotency-key", default=None)

    def handle(self, *args, organization_id: str, event_type: str, data: str, idempotency_key, **options):
        # Checked up front: inside an outer transaction the foreign key would only fail at commit.
        if not Organization.objects.filter(id=organization_id).exists():
            raise CommandError(f"No organization {organization_id!r}.")
        try:
            payload = parse_json_object(data)
        except ValueError as exc:
            raise CommandError(f"--data: {exc}") from exc
        try:
            event = services.emit(organization_id, event_type, payload, idempotency_key=idempotency_key)
        except services.EmitError as exc:
            problems = [f"{field}: {message}" for field, messages in exc.fields.items() for message in messages]
            raise CommandError("; ".join(problems)) from exc
        self.stdout.write(event.id)
