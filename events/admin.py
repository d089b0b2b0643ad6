"""Operators' admin for the event store, and a paginator for the admin's largest tables."""

from __future__ import annotations

from django.contrib import admin
from django.core.paginator import Paginator
from django.db import connections
from django.http import HttpRequest
from django.utils.functional import cached_property
from django.utils.html import format_html

from events.encoding import pretty
from events.models import Event

# An unfiltered list of a table with more rows than this shows PostgreSQL's estimate of the
# count instead of counting every row on each page view.
EXACT_COUNT_LIMIT = 100_000


class LargeTablePaginator(Paginator):
    """Counts unfiltered lists from the planner's statistics, not with ``count(*)``.

    Filtered lists (by webhook, organization, status) keep an exact count: their filters are
    indexed and narrow.
    """

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if not queryset.query.where:
            with connections[queryset.db].cursor() as cursor:
                cursor.execute(
                    "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass", [queryset.model._meta.db_table]
                )
                row = cursor.fetchone()
            if row and row[0] > EXACT_COUNT_LIMIT:
                return int(row[0])
        return super().count


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    """Read-only: events are emitted by producers, never edited."""

    list_display = ["id", "type", "organization", "created_at"]
    list_select_related = ["organization"]
    # Exact matches only, so a search is an index lookup: event id, event type, organization id.
    search_fields = ["=id", "=type", "=organization__id"]
    search_help_text = "Exact event id, event type (e.g. threat.detected) or organization id."
    # Ids are time-ordered: newest first is a primary-key index scan.
    ordering = ["-id"]
    show_full_result_count = False
    paginator = LargeTablePaginator
    fields = ["id", "type", "organization", "created_at", "idempotency_key", "pretty_payload"]
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Event | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Event | None = None) -> bool:
        # Removed by retention (WEBHOOK_RETENTION_DAYS drops whole days), not by hand.
        return False

    @admin.display(description="payload (the exact bytes every delivery sends, indented here)")
    def pretty_payload(self, event: Event) -> str:
        return format_html("<pre>{}</pre>", pretty(event.envelope))
