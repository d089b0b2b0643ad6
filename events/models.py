"""The event store: one row per emitted event, holding the exact bytes every delivery sends."""

from __future__ import annotations

import json
from functools import partial
from typing import Any

from django.db import models
from django.utils import timezone

from webhooks_project.ids import new_id


class Event(models.Model):
    id = models.CharField(primary_key=True, max_length=40, default=partial(new_id, "evt"), editable=False)
    # Indexed by event_org_created (organization first); no separate single-column index.
    organization = models.ForeignKey(
        "webhooks.Organization", on_delete=models.CASCADE, related_name="events", db_index=False
    )
    type = models.CharField(max_length=64)
    # The envelope, serialized once at emit time: every delivery and every retry signs and
    # sends these exact characters (UTF-8).
    payload = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["organization", "-created_at"], name="event_org_created"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "idempotency_key"],
                condition=models.Q(idempotency_key__isnull=False),
                name="event_unique_idempotency_key",
            )
        ]

    def __str__(self) -> str:
        return f"{self.id} {self.type}"

    @property
    def envelope(self) -> dict[str, Any]:
        return json.loads(self.payload)

    @property
    def data(self) -> dict[str, Any]:
        return self.envelope.get("data", {})
