"""Serializer helpers shared by the apps' APIs."""

from __future__ import annotations

import heapq
from typing import Any

from rest_framework import serializers

from webhooks_project.pagination import MAX_PAGE_SIZE

# An unknown-field error names at most this many of them.
MAX_REPORTED_UNKNOWN_FIELDS = 20


class StrictSerializer(serializers.Serializer):
    """Refuses fields it does not know, and bodies that are not JSON objects."""

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, dict):
            raise serializers.ValidationError({"body": ["The body must be a JSON object."]})
        unknown = set(data) - set(self.fields)
        if unknown:
            # A few names say what is wrong; a hundred thousand would only cost time to report.
            shown = heapq.nsmallest(MAX_REPORTED_UNKNOWN_FIELDS, unknown)
            raise serializers.ValidationError({name: ["Unknown field."] for name in shown})
        return super().to_internal_value(data)


class BoundedListField(serializers.ListField):
    """A ListField that refuses a list over ``max_length`` before validating any item, where
    DRF validates (and reports) every item first: a long list of bad items cost seconds."""

    def to_internal_value(self, data: Any) -> list[Any]:
        if isinstance(data, list) and self.max_length is not None and len(data) > self.max_length:
            self.fail("max_length", max_length=self.max_length)
        return super().to_internal_value(data)


class StrictCharField(serializers.CharField):
    """A JSON string, and only that: DRF's CharField would turn ``42`` into ``"42"``."""

    default_error_messages = {"invalid": "Must be a string."}

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer, and only that: DRF's IntegerField would also take "60", 60.0 and true."""

    default_error_messages = {"invalid": "Must be a whole number."}

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    """JSON ``true`` or ``false`` only: DRF's BooleanField also takes "yes", "off", 1, ..."""

    default_error_messages = {"invalid": "Must be true or false."}

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


class PageQuerySerializer(StrictSerializer):
    """The query of a paginated list: ``limit`` and the ``cursor`` of a ``next`` link."""

    cursor = serializers.CharField(required=False)
    limit = serializers.IntegerField(required=False, min_value=1, max_value=MAX_PAGE_SIZE)
