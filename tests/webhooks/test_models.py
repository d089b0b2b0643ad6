"""The Webhook model's own rules: which secrets sign, and until when the previous one does."""

from __future__ import annotations

from datetime import timedelta

import pytest
from conftest import make_webhook
from django.utils import timezone

pytestmark = pytest.mark.django_db


def test_previous_secret_until_is_none_when_never_rotated(tenant):
    webhook = make_webhook(tenant.organization, "https://example.com/hook", secret="first-secret-123").webhook

    assert webhook.previous_secret_until() is None
    assert webhook.signing_secrets() == ["first-secret-123"]


def test_previous_secret_until_agrees_with_signing_secrets_during_and_after_overlap(tenant, settings):
    webhook = make_webhook(tenant.organization, "https://example.com/hook", secret="first-secret-123").webhook
    rotated_at = timezone.now()
    webhook.rotate_secret("second-secret-456", now=rotated_at)
    until = rotated_at + timedelta(seconds=settings.WEBHOOK_SECRET_OVERLAP)
    during, after = until - timedelta(seconds=1), until

    assert webhook.previous_secret_until(during) == until
    assert webhook.signing_secrets(during) == ["second-secret-456", "first-secret-123"]
    assert webhook.previous_secret_until(after) is None
    assert webhook.signing_secrets(after) == ["second-secret-456"]
