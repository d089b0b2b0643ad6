"""``create_user org_… person@example.com --password …``: a dashboard user of one organization."""

from __future__ import annotations

import getpass
import sys

from django.contrib.auth import get_user_model, password_validation
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.core.validators import validate_email
from django.db import transaction

from webhooks.models import Membership, Organization

# NIST SP 800-63B's floor for passwords a person chooses.
MIN_PASSWORD_LENGTH = 8


class Command(BaseCommand):
    help = (
        "Create a dashboard user (the email address is the username) who belongs to one organization. "
        "Without --password the password is asked for on the terminal."
    )

    def add_arguments(self, parser):
        parser.add_argument("organization_id")
        parser.add_argument("email")
        parser.add_argument("--password", help="the user's password (asked for when omitted)")

    def handle(self, *args, organization_id: str, email: str, password: str | None, **options):
        organization = Organization.objects.filter(id=organization_id).first()
        if organization is None:
            raise CommandError(f"No organization {organization_id!r}.")
        email = email.strip().lower()
        try:
            validate_email(email)
        except ValidationError as exc:
            raise CommandError(f"{email!r} is not a valid email address.") from exc
        User = get_user_model()
        if len(email) > User._meta.get_field(User.USERNAME_FIELD).max_length:
            raise CommandError("The email address is too long to be a username.")
        if User.objects.filter(**{User.USERNAME_FIELD: email}).exists():
            raise CommandError(f"A user {email!r} already exists.")
        if password is None:
            password = self._ask_password()
        if len(password) < MIN_PASSWORD_LENGTH:
            raise CommandError(f"The password must have at least {MIN_PASSWORD_LENGTH} characters.")
        user = User(**{User.USERNAME_FIELD: email}, email=email)
        try:
            password_validation.validate_password(password, user)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        with transaction.atomic():
            user.set_password(password)
            user.save()
            Membership.objects.create(user=user, organization=organization)
        self.stderr.write(f"Created user {email} in {organization.name!r} ({organization.id}). Log in at /ui/login.")
        self.stdout.write(email)

    def _ask_password(self) -> str:
        if not sys.stdin.isatty():
            raise CommandError("Give --password, or run the command on a terminal to be asked for it.")
        password = getpass.getpass("Password: ")
        if password != getpass.getpass("Password (again): "):
            raise CommandError("The passwords do not match.")
        return password
