"""Cursor pagination: ``{"results": [...], "next": url | null, "previous": url | null}``.

Cursors stay correct while new rows arrive (no offsets), and each page is an index range scan.
Rows are listed newest first by ``created_at``, the time every API row shows; the id breaks
ties. (Ids are time-ordered only to the millisecond, and a delivery's id is minted at fan-out
while its ``created_at`` is its event's, so ordering by id alone could disagree with the
times the client sees.)
"""

from __future__ import annotations

from django.core.exceptions import FieldDoesNotExist
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import Cursor
from rest_framework.pagination import CursorPagination as BaseCursorPagination

# Most rows one page may hold (``?limit=``): one request stays cheap however much a client asks.
MAX_PAGE_SIZE = 200
INVALID_CURSOR = "Invalid cursor: use the 'next' or 'previous' link of a previous page."


class CursorPagination(BaseCursorPagination):
    ordering = ("-created_at", "-id")
    page_size_query_param = "limit"
    max_page_size = MAX_PAGE_SIZE

    def paginate_queryset(self, queryset, request, view=None):
        self._model = queryset.model
        return super().paginate_queryset(queryset, request, view)

    def decode_cursor(self, request) -> Cursor | None:
        """DRF's decoding, but a bad cursor is the client's mistake (400), not a missing page
        (404), and a position that does not fit the ordering field is refused before it can
        reach the database as an invalid comparison."""
        try:
            cursor = super().decode_cursor(request)
        except NotFound:
            raise ValidationError({self.cursor_query_param: [INVALID_CURSOR]}) from None
        if cursor is not None and cursor.position is not None:
            try:
                field = self._model._meta.get_field(self.ordering[0].lstrip("-"))
                field.to_python(cursor.position)
            except (FieldDoesNotExist, DjangoValidationError, ValueError, TypeError):
                raise ValidationError({self.cursor_query_param: [INVALID_CURSOR]}) from None
        return cursor
