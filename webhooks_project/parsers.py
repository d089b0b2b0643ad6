"""The API's JSON parser: DRF's, with a bound on the work one request body may cost.

A 1 MB body is parsed in milliseconds, but everything after the parse walks every value in
Python (serializer fields, the payload checks, the JavaScript-compatible encoder): a megabyte
of ``[0,0,0,…]`` is half a million values and used to cost seconds of CPU. So a body holding
more than ``JSON_MAX_VALUES`` values, or nested deeper than ``JSON_MAX_DEPTH`` (which recursive
code downstream would choke on; a thousand levels made the parser itself raise RecursionError),
is a 400 naming the limit, checked right after the parse and before anything else reads it.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from events.encoding import NestedTooDeep, TooManyValues, check_json_bounds


class BoundedJSONParser(JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: dict | None = None) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(self._too_deep()) from None
        try:
            check_json_bounds(data, max_depth=settings.JSON_MAX_DEPTH, max_values=settings.JSON_MAX_VALUES)
        except NestedTooDeep:
            raise ParseError(self._too_deep()) from None
        except TooManyValues:
            raise ParseError(
                f"The JSON body holds more than {settings.JSON_MAX_VALUES} values (JSON_MAX_VALUES)."
            ) from None
        return data

    @staticmethod
    def _too_deep() -> str:
        return f"The JSON body is nested more than {settings.JSON_MAX_DEPTH} levels deep (JSON_MAX_DEPTH)."
