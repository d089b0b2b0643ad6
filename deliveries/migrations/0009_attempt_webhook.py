"""Attempts carry their delivery's webhook, indexed with the partition key and the latency.

The stats' latency percentiles had to reach a window's attempts one delivery at a time (an
index probe each: 33,000 a day for a busy webhook); with the webhook on the attempt they read
one range of attempt_webhook_window per daily partition.

Existing attempts are filled from their deliveries in one UPDATE (every attempt has its
delivery: the record writes it through a join with the delivery, and both are deleted
together), then the column is made NOT NULL and indexed. On a large history this rewrites
every attempt row once: plan the upgrade for it (the README's Upgrading section says how long).
"""

from django.db import migrations, models

BACKFILL = """
UPDATE deliveries_attempt a SET webhook_id = d.webhook_id
FROM deliveries_delivery d
WHERE d.id = a.delivery_id AND d.created_at = a.delivery_created_at AND a.webhook_id IS NULL
"""


class Migration(migrations.Migration):
    dependencies = [
        ("deliveries", "0008_attempt_index_covers_stats"),
        ("webhooks", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="attempt",
            name="webhook",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                null=True,
                on_delete=models.DO_NOTHING,
                related_name="+",
                to="webhooks.webhook",
            ),
        ),
        migrations.RunSQL(BACKFILL, reverse_sql=migrations.RunSQL.noop),
        migrations.AlterField(
            model_name="attempt",
            name="webhook",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=models.DO_NOTHING,
                related_name="+",
                to="webhooks.webhook",
            ),
        ),
        migrations.AddIndex(
            model_name="attempt",
            index=models.Index(
                fields=["webhook", "delivery_created_at"], include=["duration_ms"], name="attempt_webhook_window"
            ),
        ),
    ]
