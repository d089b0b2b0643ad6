from django.core.management.base import BaseCommand, CommandError

from webhooks import services
from webhooks.models import Organization


class Command(BaseCommand):
    help = "Create an API key for an organization; prints the key alone on the last line (shown once)."

    def add_arguments(self, parser):
        parser.add_argument("organization_id")
        parser.add_argument("--name", default="")

    def handle(self, *args, organization_id: str, name: str, **options):
        organization = Organization.objects.filter(id=organization_id).first()
        if organization is None:
            raise CommandError(f"No organization {organization_id!r}.")
        api_key, key = services.api_key_create(organization=organization, name=name)
        self.stderr.write(f"Created API key {api_key.prefix}… for {organization.id}. It is shown once; store it now.")
        self.stdout.write(key)
