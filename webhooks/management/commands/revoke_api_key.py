from django.core.management.base import BaseCommand, CommandError

from webhooks import services
from webhooks.models import ApiKey


class Command(BaseCommand):
    help = "Revoke an API key, given the key itself, its prefix (cck_xxxxxxxx) or its id (key_…)."

    def add_arguments(self, parser):
        parser.add_argument("key")

    def handle(self, *args, key: str, **options):
        prefix = key[: len(services.API_KEY_PREFIX) + services.API_KEY_LOOKUP_CHARS]
        api_key = ApiKey.objects.filter(id=key).first() or ApiKey.objects.filter(prefix=prefix).first()
        if api_key is None:
            raise CommandError("No such API key.")
        services.api_key_revoke(api_key=api_key)
        self.stdout.write(f"Revoked {api_key.prefix}…")
