"""``POST /ui/api/events`` and ``POST /ui/api/events/batch``: emit an event, or a batch, over REST."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from events import services
from webhooks.throttling import charge_events
from webhooks_project.serializers import BoundedListField, StrictCharField, StrictSerializer


@extend_schema_field(OpenApiTypes.OBJECT)
class JsonObjectField(serializers.Field):
    """A JSON object, taken as parsed: emit() checks what it holds and serializes it once.
    (DRF's JSONField would serialize it a first time only to see that it can be.)"""

    default_error_messages = {"invalid": "Must be a JSON object."}

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if not isinstance(data, dict):
            self.fail("invalid")
        return data

    def to_representation(self, value: Any) -> Any:
        return value


class EmitSerializer(StrictSerializer):
    event = StrictCharField(max_length=64)
    data = JsonObjectField()


class EventCreateView(APIView):
    # Counted in events (API_EVENTS_THROTTLE_RATE), not with the other requests.
    throttle_classes: list = []

    @extend_schema(
        request=EmitSerializer,
        parameters=[OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER, required=False)],
        responses={202: inline_serializer("EventAccepted", {"id": serializers.CharField()})},
    )
    def post(self, request: Request) -> Response:
        charge_events(request, 1)
        serializer = EmitSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            event = services.emit(
                request.user.organization,
                serializer.validated_data["event"],
                serializer.validated_data["data"],
                idempotency_key=request.headers.get("Idempotency-Key"),
            )
        except services.EmitError as exc:
            raise serializers.ValidationError(exc.fields) from exc
        return Response({"id": event.id}, status=status.HTTP_202_ACCEPTED)


class BatchEventsField(BoundedListField):
    """The batch's items, taken as parsed: their length is checked before anything else (the
    service's one rule, WEBHOOK_BATCH_MAX_EVENTS), each item by ``emit_many``, which names it."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(child=JsonObjectField(), allow_empty=False, **kwargs)

    def to_internal_value(self, data: Any) -> list[Any]:
        if isinstance(data, list):
            try:
                services.check_batch_size(len(data))
            except services.EmitError as exc:
                raise serializers.ValidationError(exc.message) from exc
        return super().to_internal_value(data)


class EmitBatchSerializer(StrictSerializer):
    # Documented as a list of EmitBatchItem (webhooks_project.openapi), with its bounds.
    events = BatchEventsField()


class EventBatchCreateView(APIView):
    # Counted in events (API_EVENTS_THROTTLE_RATE), each event of the batch, not as one request.
    throttle_classes: list = []

    @extend_schema(
        request=EmitBatchSerializer,
        responses={
            202: inline_serializer("EventsAccepted", {"ids": serializers.ListField(child=serializers.CharField())})
        },
    )
    def post(self, request: Request) -> Response:
        serializer = EmitBatchSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        items = serializer.validated_data["events"]
        charge_events(request, len(items))
        try:
            events = services.emit_many(request.user.organization, items)
        except services.EmitError as exc:
            raise serializers.ValidationError(exc.fields) from exc
        return Response({"ids": [event.id for event in events]}, status=status.HTTP_202_ACCEPTED)
