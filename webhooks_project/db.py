"""What the services share about PostgreSQL transactions."""

from __future__ import annotations

import contextlib

from django.db import transaction


def savepoint_if_in_transaction() -> contextlib.AbstractContextManager[object]:
    """A savepoint when the caller is inside a transaction, so a statement PostgreSQL refuses
    does not abort the caller's; nothing otherwise, where a statement (or a query string of
    several) is a transaction of its own."""
    return contextlib.nullcontext() if transaction.get_autocommit() else transaction.atomic()
