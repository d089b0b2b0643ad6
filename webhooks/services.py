"""Writes to an organization's configuration: organizations, API keys, webhooks.

The only writer of a webhook's ``enabled`` and ``disabled_reason``: the API, the dashboard, the
admin, the drain (410 Gone) and the hourly auto-disable all come through here.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import secrets as random_secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models.functions import Now
from django.utils import timezone

from webhooks import filters
from webhooks.models import MAX_SECRET_OVERLAP_SECONDS, ApiKey, Organization, Webhook, disabled_reason_text
from webhooks.signing_keys import SECRET_PREFIX, standard_key
from webhooks_project.exceptions import Conflict

logger = logging.getLogger(__name__)

API_KEY_PREFIX = "cck_"
# 8 characters identify a key (looked up by index); 40 more carry 240 bits of secret.
API_KEY_LOOKUP_CHARS = 8
API_KEY_SECRET_BYTES = 30


def organization_create(*, name: str) -> Organization:
    return Organization.objects.create(name=name)


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def api_key_create(*, organization: Organization, name: str = "") -> tuple[ApiKey, str]:
    """Create a key; returns the row and the key itself, which is never retrievable again."""
    lookup = random_secrets.token_hex(API_KEY_LOOKUP_CHARS // 2)
    key = f"{API_KEY_PREFIX}{lookup}_{random_secrets.token_urlsafe(API_KEY_SECRET_BYTES)}"
    api_key = ApiKey.objects.create(
        organization=organization, name=name, prefix=f"{API_KEY_PREFIX}{lookup}", key_hash=hash_api_key(key)
    )
    return api_key, key


def api_key_revoke(*, api_key: ApiKey) -> None:
    ApiKey.objects.filter(id=api_key.id, revoked_at__isnull=True).update(revoked_at=Now())


@dataclass(frozen=True)
class CreatedWebhook:
    webhook: Webhook
    secret: str


def generate_secret() -> str:
    """``whsec_`` + base64 of 32 random bytes, the Standard Webhooks form."""
    return SECRET_PREFIX + base64.b64encode(random_secrets.token_bytes(32)).decode("ascii")


def webhook_create(
    *,
    organization: Organization,
    url: str,
    events: list[str],
    secret: str | None = None,
    enabled: bool = True,
    description: str = "",
    filter: dict[str, Any] | None = None,
) -> CreatedWebhook:
    """Create a webhook. Input is validated by the caller (serializer or form); a secret that
    cannot sign raises ValueError here too, since stored it would hold every delivery back.

    Raises Conflict when the organization already has WEBHOOK_MAX_PER_ORGANIZATION webhooks;
    the organization's row is locked while counting, so concurrent creates cannot pass it.
    """
    secret = secret or generate_secret()
    standard_key(secret)
    webhook = Webhook(organization=organization, url=url, events=events, enabled=enabled, description=description)
    webhook.set_filter(filters.validate_filter(filter) if filter is not None else None)
    webhook.set_secret(secret)
    limit = settings.WEBHOOK_MAX_PER_ORGANIZATION
    with transaction.atomic():
        Organization.objects.select_for_update().filter(id=organization.id).first()
        if Webhook.objects.filter(organization_id=organization.id).count() >= limit:
            raise Conflict(
                f"This organization has reached its limit of {limit} webhooks. "
                "Delete one you no longer use, or ask an operator to raise WEBHOOK_MAX_PER_ORGANIZATION."
            )
        webhook.save(force_insert=True)
    return CreatedWebhook(webhook=webhook, secret=secret)


def webhook_update(
    *,
    webhook: Webhook,
    changes: dict[str, Any],
    disabled_reason: str = Webhook.DisabledReason.USER,
) -> Webhook:
    """Apply validated changes; re-enabling clears the reason it was disabled.

    Disabling records ``disabled_reason`` (a ``Webhook.DisabledReason``): the organization's
    own choice (the API, the dashboard) unless an operator's (the admin). A webhook already
    disabled keeps its reason. A ``filter`` (None removes it) is stored with its compiled
    predicate; an invalid one raises ``filters.FilterError`` (callers validate first).
    """
    changes = dict(changes)
    new_filter = changes.pop("filter", webhook.filter)
    fields = [*changes, "disabled_reason", "updated_at"]
    if new_filter != webhook.filter:
        webhook.set_filter(filters.validate_filter(new_filter) if new_filter is not None else None)
        fields += ["filter", "filter_path", "filter_since"]
    elif changes.get("events", webhook.events) != webhook.events or (changes.get("enabled") and not webhook.enabled):
        # What the filter is counted against changed: skipped events are counted from now.
        webhook.filter_since = timezone.now()
        fields.append("filter_since")
    for field, value in changes.items():
        setattr(webhook, field, value)
    if changes.get("enabled") is True:
        webhook.disabled_reason = ""
    elif changes.get("enabled") is False and not webhook.disabled_reason:
        webhook.disabled_reason = disabled_reason
    # Only what changed: an instance read before a rotation must not write its secrets back.
    webhook.save(update_fields=fields)
    return webhook


_DISABLE_SQL = """
UPDATE webhooks_webhook SET enabled = false, disabled_reason = %(reason)s, updated_at = now()
WHERE id = ANY(%(ids)s) AND enabled AND (%(since)s::timestamptz IS NULL OR updated_at <= %(since)s)
RETURNING id
"""


def webhooks_disable(*, webhook_ids: list[str], reason: str, unchanged_since: datetime | None = None) -> list[str]:
    """Disable those of ``webhook_ids`` still enabled, in one statement; return their ids.

    ``reason`` is a ``Webhook.DisabledReason``. With ``unchanged_since``, a webhook changed
    after it (re-enabled, edited) is left alone. Used by the hourly auto-disable and the
    admin's action.
    """
    with connection.cursor() as cursor:
        cursor.execute(_DISABLE_SQL, {"reason": str(reason), "ids": webhook_ids, "since": unchanged_since})
        disabled = [row[0] for row in cursor.fetchall()]
    for webhook_id in disabled:
        logger.warning("webhook %s disabled: %s", webhook_id, disabled_reason_text(reason))
    return disabled


def webhook_disable(*, webhook_id: str, reason: str) -> bool:
    """Disable one webhook, if it is enabled (the drain, when a receiver answers 410 Gone)."""
    return bool(webhooks_disable(webhook_ids=[webhook_id], reason=reason))


def webhook_rotate_secret(*, webhook: Webhook, secret: str | None = None, expire_previous_in: int | None = None) -> str:
    """Replace the signing secret (with ``secret``, or a generated one); return the new secret.

    Until ``expire_previous_in`` seconds from now (default WEBHOOK_SECRET_OVERLAP) the previous
    secret keeps signing X-CyberCage-Signature, and webhook-signature carries both, so receivers
    not yet updated keep verifying; ``0`` switches both headers to the new secret at once (a
    leaked secret). ``webhook`` is updated in place (``previous_secret_until()`` says when the
    switch happens). A secret that cannot sign, or an ``expire_previous_in`` outside 0 to
    MAX_SECRET_OVERLAP_SECONDS, raises ValueError (callers validate first).
    """
    secret = secret or generate_secret()
    standard_key(secret)
    if expire_previous_in is not None and not 0 <= expire_previous_in <= MAX_SECRET_OVERLAP_SECONDS:
        raise ValueError(f"expire_previous_in must be 0 to {MAX_SECRET_OVERLAP_SECONDS} seconds")
    seconds = settings.WEBHOOK_SECRET_OVERLAP if expire_previous_in is None else expire_previous_in
    overlap = timedelta(seconds=seconds)
    _change_secrets(webhook, lambda locked: locked.rotate_secret(secret, overlap=overlap, now=timezone.now()))
    return secret


def webhook_expire_previous_secret(*, webhook: Webhook) -> Webhook:
    """End a rotation's overlap now (the receivers have been updated): the new secret signs both
    headers from the webhook's next drain on (one under way keeps the secrets it read, for at
    most WEBHOOK_DRAIN_SECONDS). With no overlap under way, nothing changes."""
    _change_secrets(webhook, Webhook.end_overlap)
    return webhook


_SECRET_FIELDS = ["secret_encrypted", "previous_secret_encrypted", "previous_secret_expires_at", "updated_at"]


def _change_secrets(webhook: Webhook, change: Callable[[Webhook], None]) -> None:
    """Apply ``change`` to the webhook's row, locked (a rotation depends on the one before it),
    save only its secrets, and copy them onto ``webhook``."""
    with transaction.atomic():
        locked = Webhook.objects.select_for_update().get(id=webhook.id)
        change(locked)
        locked.save(update_fields=_SECRET_FIELDS)
    for field in _SECRET_FIELDS:
        setattr(webhook, field, getattr(locked, field))


def webhook_delete(*, webhook: Webhook) -> None:
    webhook.delete()
