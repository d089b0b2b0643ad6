"""The delivery app's start-up: it hands its fan-out to ``emit()`` (events.hooks)."""

from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class DeliveriesConfig(AppConfig):
    name = "deliveries"
    verbose_name = "Deliveries"

    def ready(self) -> None:
        # emit() (events) stores each event's deliveries through this app's fan-out, handed
        # over here explicitly: events never imports deliveries (see events.hooks).
        from deliveries.fanout import event_fan_out_at_emit
        from events.hooks import register_fan_out

        register_fan_out(event_fan_out_at_emit)
        # Every migrate (the Procfile's release) makes the history's partitions ahead, as beat does.
        post_migrate.connect(_premake_partitions, sender=self)


def _premake_partitions(**kwargs: Any) -> None:
    from deliveries.partitions import partitioned, partitions_premake

    if partitioned():
        partitions_premake()
