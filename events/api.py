"""``POST /ui/api/events``: emit an event over REST."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from events import services
from webhooks.throttling import charge_events
from webhooks_project.serializers import StrictCharField, StrictSerializer


class EmitSerializer(StrictSerializer):
    event = StrictCharField(max_length=64)
    data = serializers.JSONField()

    def validate_data(self, value: object) -> object:
        if not isinstance(value, dict):
            raise serializers.ValidationError("data must be a JSON object.")
        return value


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
            raise serializers.ValidationError({exc.field: [exc.message]}) from exc
        return Response({"id": event.id}, status=status.HTTP_202_ACCEPTED)
