from django.db import migrations, models


class Migration(migrations.Migration):
    """The state of what deliveries 0007 did to events_event: the idempotency key's unique index
    became a plain one, its uniqueness kept by a trigger (partitioning allows no unique index
    without created_at)."""

    dependencies = [
        ("events", "0002_event_fans_out_at_emit"),
        ("deliveries", "0007_partitioned_history"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveConstraint(model_name="event", name="event_unique_idempotency_key"),
                migrations.AddIndex(
                    model_name="event",
                    index=models.Index(
                        condition=models.Q(idempotency_key__isnull=False),
                        fields=["organization", "idempotency_key"],
                        name="event_idempotency_key",
                    ),
                ),
            ],
        ),
    ]
