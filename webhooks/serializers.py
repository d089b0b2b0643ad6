"""Webhook configuration as the API reads and writes it. Secrets are never rendered here."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from events import catalogue
from webhooks.destinations import UrlRefused, check_url
from webhooks.models import Webhook
from webhooks_project.serializers import StrictSerializer

MIN_SECRET_LENGTH = 12
MAX_SECRET_LENGTH = 255


def validate_destination(url: str) -> str:
    try:
        check_url(url)
    except UrlRefused as exc:
        raise serializers.ValidationError(str(exc)) from exc
    return url


def validate_event_list(events: list[str]) -> list[str]:
    if not events:
        raise serializers.ValidationError(
            f'At least one event type is required. Valid types: {", ".join(catalogue.names())}, or "*" for all.'
        )
    unknown = [name for name in events if name != catalogue.ALL_EVENTS and not catalogue.is_known(name)]
    if unknown:
        raise serializers.ValidationError(
            f'Unknown event type(s): {", ".join(unknown)}. Valid types: {", ".join(catalogue.names())}, or "*" for all.'
        )
    return list(dict.fromkeys(events))


class WebhookSerializer(serializers.ModelSerializer):
    class Meta:
        model = Webhook
        fields = ["id", "url", "events", "enabled", "description", "disabled_reason", "created_at", "updated_at"]
        read_only_fields = fields


class WebhookCreatedSerializer(WebhookSerializer):
    """The create and rotate responses: the only ones that carry the secret."""

    secret = serializers.CharField()

    class Meta(WebhookSerializer.Meta):
        fields = [*WebhookSerializer.Meta.fields, "secret"]
        read_only_fields = fields


class WebhookWriteSerializer(StrictSerializer):
    url = serializers.CharField(max_length=2048, trim_whitespace=True)
    events = serializers.ListField(child=serializers.CharField(max_length=64), allow_empty=True, max_length=50)
    secret = serializers.CharField(
        required=False, min_length=MIN_SECRET_LENGTH, max_length=MAX_SECRET_LENGTH, trim_whitespace=False
    )
    enabled = serializers.BooleanField(required=False, default=True)
    description = serializers.CharField(required=False, allow_blank=True, max_length=500, default="")

    def validate_url(self, value: str) -> str:
        return validate_destination(value)

    def validate_events(self, value: list[str]) -> list[str]:
        return validate_event_list(value)


class WebhookUpdateSerializer(StrictSerializer):
    """PUT and PATCH both take partial bodies, as the document shows (``{"enabled": false}``)."""

    url = serializers.CharField(required=False, max_length=2048, trim_whitespace=True)
    events = serializers.ListField(
        child=serializers.CharField(max_length=64), required=False, allow_empty=True, max_length=50
    )
    enabled = serializers.BooleanField(required=False)
    description = serializers.CharField(required=False, allow_blank=True, max_length=500)

    def validate_url(self, value: str) -> str:
        return validate_destination(value)

    def validate_events(self, value: list[str]) -> list[str]:
        return validate_event_list(value)

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict) and "secret" in data:
            raise serializers.ValidationError(
                {"secret": ["The secret cannot be set here; use POST /ui/api/webhooks/{id}/rotate-secret."]}
            )
        return super().to_internal_value(data)


class RotateSecretSerializer(StrictSerializer):
    secret = serializers.CharField(
        required=False, min_length=MIN_SECRET_LENGTH, max_length=MAX_SECRET_LENGTH, trim_whitespace=False
    )


class EventTypeSerializer(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField()
    payload = serializers.CharField()
    data_shape = serializers.DictField()
    sample = serializers.DictField()
