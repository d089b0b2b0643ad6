"""Cursor pagination: ``{"results": [...], "next": url | null, "previous": url | null}``.

Cursors stay correct while new rows arrive (no offsets), and each page is an index range scan.
"""

from rest_framework.pagination import CursorPagination as BaseCursorPagination


class CursorPagination(BaseCursorPagination):
    ordering = "-id"  # ids are time-ordered: newest first
    page_size_query_param = "limit"
    max_page_size = 200
