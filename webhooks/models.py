"""An organization's configuration: the organization, its API keys, its webhook endpoints."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import partial

from django.conf import settings
from django.db import models
from django.utils import timezone

from webhooks import crypto, filters
from webhooks.destinations import MAX_URL_LENGTH
from webhooks.signing_keys import SigningSecrets
from webhooks_project.ids import new_id

# The longest a rotation may keep the previous secret signing: a week covers a slow rollout to
# every receiver; longer, and a secret being replaced (perhaps leaked) signs for too long.
MAX_SECRET_OVERLAP_SECONDS = 7 * 24 * 3600


class Organization(models.Model):
    id = models.CharField(primary_key=True, max_length=40, default=partial(new_id, "org"), editable=False)
    name = models.CharField(max_length=200)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.id})"


class ApiKey(models.Model):
    """A bearer key. Only a SHA-256 of the key is stored; the key is shown once at creation.

    Keys carry 240 random bits, so a fast hash is enough: nothing can be guessed offline.
    """

    id = models.CharField(primary_key=True, max_length=40, default=partial(new_id, "key"), editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=200, blank=True)
    prefix = models.CharField(max_length=32, unique=True, editable=False)
    key_hash = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.organization_id})"


class JsonPathField(models.TextField):
    """A PostgreSQL ``jsonpath``: parsed once when stored, not at every event it is evaluated for."""

    def db_type(self, connection) -> str:
        return "jsonpath"


class Webhook(models.Model):
    class DisabledReason(models.TextChoices):
        """Why a webhook is disabled; only ``webhooks.services`` writes it (and ``enabled``)."""

        # Annotated: mypy, without type stubs for Django, would take each member for the
        # (value, label) tuple it is written as; at run time each is the str value.
        USER: str = "user", "disabled by user"  # type: ignore[assignment]
        OPERATOR: str = "operator", "disabled by an operator"  # type: ignore[assignment]
        GONE: str = "gone", "receiver answered 410 Gone"  # type: ignore[assignment]
        FAILING: str = "failing", "every delivery failed for WEBHOOK_DISABLE_AFTER_DAYS days"  # type: ignore[assignment]

    id = models.CharField(primary_key=True, max_length=40, default=partial(new_id, "whk"), editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="webhooks")
    url = models.CharField(max_length=MAX_URL_LENGTH)
    events = models.JSONField(default=list)
    description = models.CharField(max_length=500, blank=True, default="")
    enabled = models.BooleanField(default=True)
    # Empty while enabled.
    disabled_reason = models.CharField(max_length=200, blank=True, default="", choices=DisabledReason.choices)
    # The payload filter (webhooks.filters); null: every subscribed event. Set only through
    # set_filter(), which keeps its compiled predicate beside it: emit() evaluates that one.
    filter = models.JSONField(null=True, blank=True, default=None)
    # Annotated: mypy, without Django's stubs, would take the attribute for the field itself.
    filter_path: str | None = JsonPathField(  # type: ignore[assignment]
        "compiled filter (jsonpath)", null=True, blank=True, default=None, editable=False
    )
    # Since when every subscribed event without a delivery was skipped by the filter: set when the
    # filter, the subscriptions or ``enabled`` change (the stats' ``filtered`` counts from here).
    filter_since = models.DateTimeField(null=True, blank=True, editable=False)
    # Signing secrets, encrypted at rest; never rendered anywhere but create and rotate.
    secret_encrypted = models.TextField(editable=False)
    previous_secret_encrypted = models.TextField(blank=True, default="", editable=False)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["organization", "-created_at"], name="webhook_org_created")]

    def __str__(self) -> str:
        return f"{self.id} {self.url}"

    @property
    def disabled_reason_text(self) -> str:
        """Why it is disabled, as a sentence (what the API and the pages show); empty if enabled."""
        return disabled_reason_text(self.disabled_reason)

    def set_filter(self, filter: dict | None) -> None:
        """Set (or, with None, remove) the filter and its compiled predicate; ``filter`` is valid."""
        self.filter = filter
        self.filter_path = None if filter is None else filters.compile_filter(filter)
        self.filter_since = timezone.now()

    def set_secret(self, secret: str) -> None:
        self.secret_encrypted = crypto.encrypt(secret)

    def previous_secret_until(self, now: datetime | None = None) -> datetime | None:
        """When the secret replaced by the last rotation stops signing; None once it has."""
        now = now or timezone.now()
        until = self.previous_secret_expires_at
        if self.previous_secret_encrypted and until and until > now:
            return until
        return None

    def signing_secrets(self, now: datetime | None = None) -> SigningSecrets:
        """The secrets that sign a delivery now: during a rotation's overlap the previous one signs
        X-CyberCage-Signature and both sign webhook-signature; otherwise the current one all."""
        current = crypto.decrypt(self.secret_encrypted)
        if not self.previous_secret_until(now):
            return SigningSecrets.of(current)
        previous = crypto.decrypt(self.previous_secret_encrypted)
        return SigningSecrets(documented=previous, standard=(current, previous))

    def rotate_secret(self, new_secret: str, *, overlap: timedelta, now: datetime) -> None:
        """Make ``new_secret`` current.

        With an overlap, the secret receivers verify with keeps signing until ``now + overlap``:
        the current one — or, rotating again during an overlap, still the previous one, since
        the receivers have not moved yet (the replaced new secret never signed alone). Without
        one, the new secret signs everything at once (a leaked secret).
        """
        if overlap <= timedelta(0):
            self.end_overlap()
        else:
            if not self.previous_secret_until(now):
                self.previous_secret_encrypted = self.secret_encrypted
            self.previous_secret_expires_at = now + overlap
        self.set_secret(new_secret)

    def end_overlap(self) -> None:
        """The previous secret stops signing, and is forgotten."""
        self.previous_secret_encrypted = ""
        self.previous_secret_expires_at = None


def disabled_reason_text(reason: str) -> str:
    """A ``Webhook.disabled_reason`` as a sentence; a stored value that is no choice, as stored."""
    if reason == Webhook.DisabledReason.FAILING:
        # The rule in force: the one that disabled it, unless the setting changed since.
        return f"every delivery failed for {settings.WEBHOOK_DISABLE_AFTER_DAYS} days"
    return dict(Webhook.DisabledReason.choices).get(reason, reason)


class Membership(models.Model):
    """A dashboard user's organization: each user belongs to exactly one."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="membership")
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="members")
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    def __str__(self) -> str:
        return f"{self.user} @ {self.organization_id}"
