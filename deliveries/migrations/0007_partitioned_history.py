"""The history partitioned by day: events, deliveries and attempts become range-partitioned on
their creation time, the partitions managed by pg_partman (deliveries/partitions.py).

An existing database is converted in place with nothing lost. Each table is renamed; a
partitioned table with the same columns, defaults, checks and identity takes its name;
pg_partman makes a partition for every day from the oldest row to
WEBHOOK_PARTITION_PREMAKE_DAYS ahead, and a default one; the rows are copied and the old
table dropped; then keys, indexes and foreign keys are built over the loaded partitions. Writers
wait for the copy (the tables are locked): its length grows with the history kept.

What partitioning changes in the keys (each must include the partition key):
* primary keys are (id, created_at) — ids stay unique by construction (webhooks_project.ids);
* attempts carry their delivery's created_at (delivery_created_at) as partition key, so a
  day's attempts are dropped with that day's deliveries, and attempt_unique_number becomes
  (delivery_id, number, delivery_created_at): the same rows, as the last is the delivery's;
* the idempotency key's unique index becomes a plain index, and a trigger keeps a key unique
  per organization across every partition (event_idempotency_key_unique, below);
* no foreign keys between the three tables (see Delivery.event); those to organizations and
  webhooks stay.
The reverse makes plain tables again, with the keys and foreign keys of migration 0006.
"""

from django.conf import settings
from django.db import migrations, models

PARTMAN_SCHEMA = "partman"
# (table, partition key), parents first: the copy of an attempt reads its delivery.
TABLES = (
    ("events_event", "created_at"),
    ("deliveries_delivery", "created_at"),
    ("deliveries_attempt", "delivery_created_at"),
)
# The unique indexes and constraints that must change with partitioning, as
# {table: {name: (definition when partitioned, definition when plain)}}.
UNIQUE = {
    "events_event": {
        "event_unique_idempotency_key": (
            None,
            "CREATE UNIQUE INDEX event_unique_idempotency_key ON events_event (organization_id, idempotency_key)"
            " WHERE idempotency_key IS NOT NULL",
        ),
        "event_idempotency_key": (
            "CREATE INDEX event_idempotency_key ON events_event (organization_id, idempotency_key)"
            " WHERE idempotency_key IS NOT NULL",
            None,
        ),
    },
    "deliveries_attempt": {
        "attempt_unique_number": (
            "ALTER TABLE deliveries_attempt ADD CONSTRAINT attempt_unique_number"
            " UNIQUE (delivery_id, number, delivery_created_at)",
            "ALTER TABLE deliveries_attempt ADD CONSTRAINT attempt_unique_number UNIQUE (delivery_id, number)",
        ),
    },
}
# The foreign keys between the three tables, in the plain layout only.
PLAIN_FOREIGN_KEYS = (
    "ALTER TABLE deliveries_delivery ADD CONSTRAINT deliveries_delivery_event_id_fk_events_event_id"
    " FOREIGN KEY (event_id) REFERENCES events_event (id) DEFERRABLE INITIALLY DEFERRED",
    "ALTER TABLE deliveries_attempt ADD CONSTRAINT deliveries_attempt_delivery_id_fk_deliveries_delivery_id"
    " FOREIGN KEY (delivery_id) REFERENCES deliveries_delivery (id) DEFERRABLE INITIALLY DEFERRED",
)

# Partitioned by day, events_event cannot hold a unique index on (organization_id,
# idempotency_key): it would have to include created_at. This trigger keeps the guarantee over
# every partition: the writers of one key take turns (an advisory lock held to their commit),
# and each looks with a fresh snapshot — a volatile function's queries see what others have
# committed, and what its own statement has written — so the second of two writers of a key
# fails with a unique violation, as with the index. emit() frees keys older than the window
# by setting them to NULL first, as before.
IDEMPOTENCY_TRIGGER_SQL = """
CREATE FUNCTION event_idempotency_key_unique() RETURNS trigger
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended(NEW.organization_id || ' ' || NEW.idempotency_key, 0));
    IF EXISTS (
        SELECT 1 FROM events_event
        WHERE organization_id = NEW.organization_id AND idempotency_key = NEW.idempotency_key AND id <> NEW.id
    ) THEN
        RAISE unique_violation USING
            MESSAGE = 'duplicate idempotency key for organization ' || NEW.organization_id,
            CONSTRAINT = 'event_idempotency_key';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER event_idempotency_key_unique
BEFORE INSERT OR UPDATE OF idempotency_key ON events_event
FOR EACH ROW WHEN (NEW.idempotency_key IS NOT NULL)
EXECUTE FUNCTION event_idempotency_key_unique();
"""
DROP_IDEMPOTENCY_TRIGGER_SQL = """
DROP TRIGGER IF EXISTS event_idempotency_key_unique ON events_event;
DROP FUNCTION IF EXISTS event_idempotency_key_unique();
"""

# A table's indexes that back no key, and its foreign keys: what is built again as it was.
_INDEXES_SQL = """
SELECT i.relname, pg_get_indexdef(i.oid), x.indisunique FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
WHERE x.indrelid = %s::regclass
  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid AND c.conrelid = x.indrelid)
ORDER BY i.relname
"""
_FOREIGN_KEYS_SQL = """
SELECT conname, pg_get_constraintdef(oid), confrelid::regclass::text FROM pg_constraint
WHERE conrelid = %s::regclass AND contype = 'f' ORDER BY conname
"""
_COLUMNS_SQL = """
SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM pg_attribute
WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped AND attname <> 'delivery_created_at'
"""
_NAMES = {table for table, _key in TABLES}


def _saved(cursor, table: str) -> tuple[list[str], list[str]]:
    """The table's indexes (but the unique ones listed in UNIQUE) and its foreign keys to
    tables outside the three, as statements that make them again."""
    cursor.execute(_INDEXES_SQL, [table])
    indexes = []
    for name, definition, unique in cursor.fetchall():
        if name in UNIQUE.get(table, {}):
            continue
        if unique:
            raise RuntimeError(f"{table}: unique index {name} is not known to this migration; add it to UNIQUE")
        indexes.append(definition.replace(" ON ONLY ", " ON "))
    cursor.execute(_FOREIGN_KEYS_SQL, [table])
    foreign_keys = [
        f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}'
        for name, definition, target in cursor.fetchall()
        if target not in _NAMES
    ]
    return indexes, foreign_keys


def _rebuild(cursor, table: str, key: str | None, saved: tuple[list[str], list[str]], partitioned: bool) -> None:
    keys = f"id, {key}" if partitioned else "id"
    cursor.execute(f"ALTER TABLE {table} ADD CONSTRAINT {table}_pkey PRIMARY KEY ({keys})")
    indexes, foreign_keys = saved
    for statement in [*indexes, *foreign_keys]:
        cursor.execute(statement)
    for partitioned_sql, plain_sql in UNIQUE.get(table, {}).values():
        statement = partitioned_sql if partitioned else plain_sql
        if statement:
            cursor.execute(statement)
    if table == "deliveries_attempt":  # its id is an identity column: continue after the copied ids
        cursor.execute(
            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), coalesce(max(id), 0) + 1, false) FROM {table}"
        )


def _columns(cursor, table: str) -> str:
    cursor.execute(_COLUMNS_SQL, [table])
    return cursor.fetchone()[0]


def partition(apps, schema_editor) -> None:
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {PARTMAN_SCHEMA}")
        cursor.execute(f"CREATE EXTENSION IF NOT EXISTS pg_partman SCHEMA {PARTMAN_SCHEMA}")
        saved = {table: _saved(cursor, table) for table, _key in TABLES}
        # The first day with history (UTC, as every partition bound), or today.
        cursor.execute(
            "SELECT date_trunc('day', coalesce(least("
            "(SELECT min(created_at) FROM events_event), (SELECT min(created_at) FROM deliveries_delivery)"
            "), now()) AT TIME ZONE 'UTC')::text"
        )
        start = cursor.fetchone()[0] + "+00"
        for table, key in TABLES:
            cursor.execute(f"ALTER TABLE {table} RENAME TO {table}_unpartitioned")
            extra = f", {key} timestamptz NOT NULL" if key == "delivery_created_at" else ""
            cursor.execute(
                f"CREATE TABLE {table} (LIKE {table}_unpartitioned"
                f" INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING IDENTITY{extra}) PARTITION BY RANGE ({key})"
            )
            cursor.execute(
                f"SELECT {PARTMAN_SCHEMA}.create_parent(%s, %s, 'native', '1 day',"
                " p_premake := %s, p_start_partition := %s, p_jobmon := false)",
                [f"public.{table}", key, settings.WEBHOOK_PARTITION_PREMAKE_DAYS, start],
            )
            # Partitions are made ahead of the clock, not of the newest row (a quiet day still
            # gets its partition), and dropped by deliveries/partitions.py, not by partman.
            cursor.execute(
                f"UPDATE {PARTMAN_SCHEMA}.part_config SET infinite_time_partitions = true, retention = NULL"
                " WHERE parent_table = %s",
                [f"public.{table}"],
            )
            columns = _columns(cursor, f"{table}_unpartitioned")
            if key == "delivery_created_at":
                prefixed = ", ".join(f"a.{column}" for column in columns.split(", "))
                cursor.execute(
                    f"INSERT INTO {table} ({columns}, {key}) SELECT {prefixed}, d.created_at"
                    f" FROM {table}_unpartitioned a JOIN deliveries_delivery d ON d.id = a.delivery_id"
                )
            else:
                cursor.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {table}_unpartitioned")
        for table, _key in reversed(TABLES):
            cursor.execute(f"DROP TABLE {table}_unpartitioned")
        for table, key in TABLES:
            _rebuild(cursor, table, key, saved[table], partitioned=True)
            cursor.execute(f"ANALYZE {table}")
        cursor.execute(IDEMPOTENCY_TRIGGER_SQL)


def unpartition(apps, schema_editor) -> None:
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(DROP_IDEMPOTENCY_TRIGGER_SQL)
        saved = {table: _saved(cursor, table) for table, _key in TABLES}
        for table, key in TABLES:
            cursor.execute(f"ALTER TABLE {table} RENAME TO {table}_partitioned")
            cursor.execute(
                f"CREATE TABLE {table} (LIKE {table}_partitioned"
                " INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING IDENTITY)"
            )
            if key == "delivery_created_at":
                cursor.execute(f"ALTER TABLE {table} DROP COLUMN {key}")
            columns = _columns(cursor, table)
            cursor.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {table}_partitioned")
        for table, _key in reversed(TABLES):
            cursor.execute(f"DELETE FROM {PARTMAN_SCHEMA}.part_config WHERE parent_table = %s", [f"public.{table}"])
            cursor.execute(f"DROP TABLE {table}_partitioned CASCADE")
            cursor.execute(f"DROP TABLE IF EXISTS {PARTMAN_SCHEMA}.template_public_{table}")
        for table, _key in TABLES:
            _rebuild(cursor, table, None, saved[table], partitioned=False)
        for statement in PLAIN_FOREIGN_KEYS:
            cursor.execute(statement)


class Migration(migrations.Migration):
    # The conversion must see every earlier change to the three tables.
    dependencies = [
        ("deliveries", "0006_attempt_response_body_replaced"),
        ("events", "0002_event_fans_out_at_emit"),
        ("webhooks", "0003_disabled_reason_choices"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(partition, unpartition)],
            state_operations=[
                migrations.AlterField(
                    model_name="delivery",
                    name="event",
                    field=models.ForeignKey(
                        db_constraint=False,
                        on_delete=models.deletion.CASCADE,
                        related_name="deliveries",
                        to="events.event",
                    ),
                ),
                migrations.AlterField(
                    model_name="attempt",
                    name="delivery",
                    field=models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=models.deletion.CASCADE,
                        related_name="attempt_log",
                        to="deliveries.delivery",
                    ),
                ),
                migrations.AddField(
                    model_name="attempt",
                    name="delivery_created_at",
                    field=models.DateTimeField(),
                    preserve_default=False,
                ),
                migrations.RemoveConstraint(model_name="attempt", name="attempt_unique_number"),
                migrations.AddConstraint(
                    model_name="attempt",
                    constraint=models.UniqueConstraint(
                        fields=("delivery", "number", "delivery_created_at"), name="attempt_unique_number"
                    ),
                ),
            ],
        ),
    ]
