"""The event store: one row per emitted event, holding the exact bytes every delivery sends."""

from __future__ import annotations

import json
from functools import partial
from typing import Any

from django.db import models
from django.utils import timezone

from webhooks_project.ids import new_id


class Event(models.Model):
    """An emitted event. The table is partitioned by day on ``created_at`` (see
    ``deliveries/partitions.py``), so PostgreSQL's keys include it: the primary key is
    (id, created_at) and an idempotency key cannot be a unique index. The trigger
    ``event_idempotency_key_unique`` (migration deliveries 0007) keeps a key unique per
    organization across partitions instead; ``emit()`` frees keys older than the window.
    """

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
            # Unique per organization through the trigger (see the class docstring).
            models.Index(
                fields=["organization", "idempotency_key"],
                condition=models.Q(idempotency_key__isnull=False),
                name="event_idempotency_key",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.id} {self.type}"

    @property
    def envelope(self) -> dict[str, Any]:
        return json.loads(self.payload)

    @property
    def data(self) -> dict[str, Any]:
        return self.envelope.get("data", {})
