"""Public identifiers: a type prefix and a time-ordered random part (``dlv_01J…``).

Time-ordered ids keep b-tree inserts at the right edge and sort newest-last, so "newest first"
is an index scan on the primary key order.

The same generator exists in SQL, ``new_id(prefix)``, created by the migration
``deliveries/migrations/0005_new_id_function.py``: the fan-out inserts an event's deliveries
with it, in one statement. Change both together;
``tests/events/test_emit.py::test_sql_new_id_has_the_format_and_clock_of_python_ids`` checks
that they agree.
"""

from __future__ import annotations

import os
import time

_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"


def new_id(prefix: str) -> str:
    """``prefix_`` + 26 base32 characters: 48 bits of milliseconds, 80 random bits."""
    value = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return f"{prefix}_{''.join(reversed(chars))}"
