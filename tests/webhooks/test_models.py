"""The Webhook model's own rules: which secrets sign, and until when the previous one does."""

from __future__ import annotations

from datetime import timedelta

import pytest
from conftest import make_webhook
from django.utils import timezone

from webhooks.signing_keys import SigningSecrets

pytestmark = pytest.mark.django_db


def test_previous_secret_until_is_none_when_never_rotated(tenant):
    webhook = make_webhook(tenant.organization, "https://example.com/hook", secret="first-secret-123").webhook

    assert webhook.previous_secret_until() is None
    assert webhook.signing_secrets() == SigningSecrets.of("first-secret-123")


def test_previous_secret_until_agrees_with_signing_secrets_during_and_after_overlap(tenant):
    webhook = make_webhook(tenant.organization, "https://example.com/hook", secret="first-secret-123").webhook
    rotated_at = timezone.now()
    webhook.rotate_secret("second-secret-456", overlap=timedelta(hours=2), now=rotated_at)
    until = rotated_at + timedelta(hours=2)
    during, after = until - timedelta(seconds=1), until

    assert webhook.previous_secret_until(during) == until
    # During the overlap the old secret signs X-CyberCage-Signature, and both webhook-signature.
    assert webhook.signing_secrets(during) == SigningSecrets(
        documented="first-secret-123", standard=("second-secret-456", "first-secret-123")
    )
    assert webhook.previous_secret_until(after) is None
    assert webhook.signing_secrets(after) == SigningSecrets.of("second-secret-456")


def test_rotating_again_during_an_overlap_keeps_the_secret_receivers_hold(tenant):
    webhook = make_webhook(tenant.organization, "https://example.com/hook", secret="first-secret-123").webhook
    now = timezone.now()
    webhook.rotate_secret("second-secret-456", overlap=timedelta(hours=2), now=now)

    webhook.rotate_secret("third-secret-789", overlap=timedelta(hours=3), now=now + timedelta(hours=1))

    assert webhook.previous_secret_until(now + timedelta(hours=1)) == now + timedelta(hours=4)
    assert webhook.signing_secrets(now + timedelta(hours=1)) == SigningSecrets(
        documented="first-secret-123", standard=("third-secret-789", "first-secret-123")
    )


def test_rotating_without_an_overlap_signs_with_the_new_secret_alone_at_once(tenant):
    webhook = make_webhook(tenant.organization, "https://example.com/hook", secret="first-secret-123").webhook
    now = timezone.now()
    webhook.rotate_secret("second-secret-456", overlap=timedelta(hours=2), now=now)

    webhook.rotate_secret("third-secret-789", overlap=timedelta(0), now=now)

    assert webhook.previous_secret_until(now) is None
    assert webhook.previous_secret_encrypted == ""  # the replaced secrets are forgotten
    assert webhook.signing_secrets(now) == SigningSecrets.of("third-secret-789")
