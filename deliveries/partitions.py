"""The history's daily partitions: made ahead of time, and dropped whole past retention.

``events_event``, ``deliveries_delivery`` and ``deliveries_attempt`` are range-partitioned by
day (UTC) on their creation time — an attempt on its delivery's — by migration deliveries
0007. Their lifecycle is pg_partman's (Debian's ``postgresql-15-partman``, installed by
``.ci/setup``), a maintained extension rather than DDL of our own: it names, creates and
drops the child tables, keeps a default partition, and knows which day a table holds.

* ``partitions_premake`` (beat's ``deliveries.partitions``, hourly, and at migrate): every day from today to
  WEBHOOK_PARTITION_PREMAKE_DAYS ahead has its partition in all three tables. A row outside
  every partition (beat stopped for longer than that) goes to the default partition: never
  refused.
* ``partitions_drop_expired`` (the same task, right after): days wholly older than WEBHOOK_RETENTION_DAYS
  are dropped — a catalog change, no DELETE and no dead rows, the same in a table of a
  thousand rows or of a billion. Children first, so a delivery never outlives its event.

Each table is done in its own transaction with a lock timeout: a drop needs the parent's
exclusive lock for a moment, and must not queue every insert behind a long read.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import DatabaseError, connection, transaction

logger = logging.getLogger(__name__)

PARTMAN_SCHEMA = "partman"
# The partitioned tables, children first (the order of a drop).
HISTORY_TABLES = ("deliveries_attempt", "deliveries_delivery", "events_event")
# Days of rows moved out of a default partition per run: more than it can gather, as it only
# gets what came while beat was stopped (or a clock far off).
DEFAULT_MOVE_DAYS = 1000


def partitions_premake() -> int:
    """Make the partitions of the next WEBHOOK_PARTITION_PREMAKE_DAYS days where missing.

    Rows the default partition holds are first moved to their own day's partition (made for
    them), so they expire like any other, and no day ahead is blocked: PostgreSQL makes no
    partition for a day the default partition has rows of. Returns how many rows moved.
    """
    moved = 0
    for table in HISTORY_TABLES:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                f"SELECT {PARTMAN_SCHEMA}.partition_data_time(%s, p_batch_count := %s, p_analyze := false)",
                [f"public.{table}", DEFAULT_MOVE_DAYS],
            )
            moved += cursor.fetchone()[0]
            # pg_partman's scratch table lives to the commit, shaped as this table: gone before
            # the next table's move when all run in one transaction (a caller's, or a test's).
            cursor.execute("DROP TABLE IF EXISTS pg_temp.partman_temp_data_storage")
            cursor.execute(
                f"UPDATE {PARTMAN_SCHEMA}.part_config SET premake = %s WHERE parent_table = %s",
                [settings.WEBHOOK_PARTITION_PREMAKE_DAYS, f"public.{table}"],
            )
            cursor.execute(f"SELECT {PARTMAN_SCHEMA}.run_maintenance(%s, p_analyze := false)", [f"public.{table}"])
    if moved:
        logger.warning("partitions: %d rows moved out of the default partitions", moved)
    return moved


def partitions_drop_expired() -> int:
    """Drop every daily partition wholly older than WEBHOOK_RETENTION_DAYS; return how many.

    A table whose lock is not granted within WEBHOOK_PARTITION_LOCK_TIMEOUT is left for the
    next run (and so are its parents, so no event outlives its deliveries' drop by more).
    """
    dropped = 0
    for table in HISTORY_TABLES:
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                timeout = f"{settings.WEBHOOK_PARTITION_LOCK_TIMEOUT}ms"
                cursor.execute("SELECT set_config('lock_timeout', %s, true)", [timeout])
                cursor.execute(
                    f"SELECT {PARTMAN_SCHEMA}.drop_partition_time("
                    "%s, make_interval(days => %s), p_keep_table := false)",
                    [f"public.{table}", settings.WEBHOOK_RETENTION_DAYS],
                )
                count = cursor.fetchone()[0]
        except DatabaseError as exc:
            # pg_partman re-raises every error as its own (P0001), keeping only the message.
            if "lock timeout" not in str(exc):
                raise
            logger.warning("retention: %s not dropped this time (lock not granted)", table)
            break
        dropped += count
    if dropped:
        logger.info("retention: %d daily partitions past %d days dropped", dropped, settings.WEBHOOK_RETENTION_DAYS)
    return dropped


def partitioned() -> bool:
    """Whether the history is partitioned (migrated to deliveries 0007 or later)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_partitioned_table WHERE partrelid = to_regclass(%s))", [HISTORY_TABLES[-1]]
        )
        return bool(cursor.fetchone()[0])


def partitions_of(table: str) -> list[str]:
    """The table's daily partitions, oldest first (the default one not included)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT partition_tablename FROM {PARTMAN_SCHEMA}.show_partitions(%s, 'ASC')", [f"public.{table}"]
        )
        return [row[0] for row in cursor.fetchall()]
