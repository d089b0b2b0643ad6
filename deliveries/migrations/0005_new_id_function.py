from django.db import migrations

# new_id(prefix) in SQL, the same format as webhooks_project.ids.new_id: emit inserts an
# event's deliveries with INSERT ... SELECT, one id per subscribed webhook, in one round trip.
# Change both together; tests/events/test_emit.py::test_sql_new_id_has_the_format_and_clock_of_python_ids
# checks that they agree.
NEW_ID_SQL = """
CREATE OR REPLACE FUNCTION new_id(prefix text) RETURNS text
LANGUAGE plpgsql VOLATILE PARALLEL SAFE AS $$
DECLARE
    alphabet constant text := '0123456789abcdefghjkmnpqrstvwxyz';
    random_hex constant text := replace(gen_random_uuid()::text, '-', '');
    -- 2 zero bits, 48 bits of Unix milliseconds and 80 random bits (the uuid's hex digits 1-12
    -- and 19-26: none of its fixed version or variant bits), as 26 characters of 5 bits.
    bits constant bit(130) := B'00'
        || (floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint)::bit(48)
        || ('x' || substr(random_hex, 1, 12) || substr(random_hex, 19, 8))::bit(80);
    result text := prefix || '_';
BEGIN
    FOR i IN 0..25 LOOP
        result := result || substr(alphabet, substring(bits FROM i * 5 + 1 FOR 5)::int + 1, 1);
    END LOOP;
    RETURN result;
END
$$;
"""


class Migration(migrations.Migration):
    dependencies = [
        ("deliveries", "0004_fewer_indexes"),
    ]

    operations = [
        migrations.RunSQL(NEW_ID_SQL, reverse_sql="DROP FUNCTION IF EXISTS new_id(text)"),
    ]
