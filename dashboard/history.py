"""The delivery history on a webhook's page: filtered by status and event type, a page at a time.

Pages are keyset ranges on the delivery id (time-ordered), never offsets: a page is an index
range scan however long the history, and rows arriving meanwhile do not shift the pages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from deliveries import selectors
from deliveries.models import Delivery
from webhooks.models import Webhook

HISTORY_PAGE_SIZE = 25
# The filters a page link keeps; the cursor (before/after) is the link's own.
FILTERS = ("status", "event")


@dataclass(frozen=True)
class History:
    deliveries: list[Delivery]
    newer_url: str | None
    older_url: str | None
    filtered: bool


def history_page(webhook: Webhook, wanted: dict[str, Any]) -> History:
    """One page of ``webhook``'s deliveries, newest first, from DeliveryFilterForm's cleaned data."""
    queryset = selectors.deliveries_of(webhook, status=wanted.get("status"), event_type=wanted.get("event"))
    if wanted.get("after"):
        rows = list(queryset.filter(id__gt=wanted["after"]).order_by("id")[:HISTORY_PAGE_SIZE])[::-1]
    elif wanted.get("before"):
        rows = list(queryset.filter(id__lt=wanted["before"]).order_by("-id")[:HISTORY_PAGE_SIZE])
    else:
        rows = list(queryset.order_by("-id")[:HISTORY_PAGE_SIZE])
    keep = {key: wanted[key] for key in FILTERS if wanted.get(key)}

    def link(**cursor: str) -> str:
        return "?" + urlencode({**keep, **cursor}) + "#history"

    newer = rows and queryset.filter(id__gt=rows[0].id).exists()
    older = rows and queryset.filter(id__lt=rows[-1].id).exists()
    return History(
        deliveries=rows,
        newer_url=link(after=rows[0].id) if newer else None,
        older_url=link(before=rows[-1].id) if older else None,
        filtered=bool(keep),
    )
