from django.core.management.base import BaseCommand

from webhooks import services


class Command(BaseCommand):
    help = "Create an organization; prints its id (org_…) alone on the last line."

    def add_arguments(self, parser):
        parser.add_argument("name")

    def handle(self, *args, name: str, **options):
        organization = services.organization_create(name=name)
        self.stderr.write(f"Created organization {organization.name!r}.")
        self.stdout.write(organization.id)
