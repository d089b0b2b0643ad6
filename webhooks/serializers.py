"""Webhook configuration as the API reads and writes it. Secrets are never rendered here."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from events import catalogue
from webhooks.destinations import MAX_URL_LENGTH, UrlRefused, check_url
from webhooks.filters import FilterError, validate_filter
from webhooks.models import MAX_SECRET_OVERLAP_SECONDS, Webhook
from webhooks.signing_keys import SECRET_PREFIX, standard_key
from webhooks_project.serializers import (
    BoundedListField,
    StrictBooleanField,
    StrictCharField,
    StrictIntegerField,
    StrictSerializer,
)

MIN_SECRET_LENGTH = 12
MAX_SECRET_LENGTH = 255
MAX_EVENTS = 50


def validate_destination(url: str) -> str:
    """Where the URL may point (scheme, credentials, addresses) is ``check_url``'s to judge."""
    try:
        check_url(url)
    except UrlRefused as exc:
        raise serializers.ValidationError(f"{exc}.") from exc
    except ValueError as exc:  # any other parse failure of a malformed URL
        raise serializers.ValidationError(f"Not a valid URL ({exc}).") from exc
    return url


def validate_secret(secret: str) -> str:
    """A secret must be able to sign: ``whsec_`` secrets are base64 of the key (Standard Webhooks)."""
    try:
        standard_key(secret)
    except ValueError as exc:
        raise serializers.ValidationError(
            f"This secret cannot sign deliveries: a secret starting with {SECRET_PREFIX!r} must continue with "
            "the base64 of the key (Standard Webhooks). Use another secret, or none to get one generated."
        ) from exc
    return secret


FILTER_HELP = (
    "Only events whose envelope matches are delivered: a JSON object of dotted paths (data.severity) and operators "
    "($eq, $neq, $in, $nin, $gt, $gte, $lt, $lte, $exists, $startsWith, $and, $or, $not; a bare value is $eq), e.g. "
    '{"data.severity": {"$in": ["high", "critical"]}}. null: every subscribed event.'
)


def filter_errors(exc: FilterError) -> Any:
    """A refused filter as a field's error detail: ``{"data.severity.$in": ["expected a list"]}``,
    which the API shows as ``filter.data.severity.$in: expected a list``."""
    return {exc.path: [exc.message]} if exc.path else [exc.message]


@extend_schema_field({"type": "object", "nullable": True, "additionalProperties": True, "description": FILTER_HELP})
class FilterField(serializers.Field):
    """A payload filter (``webhooks.filters``), or null for none."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("help_text", FILTER_HELP)
        super().__init__(allow_null=True, **kwargs)

    def to_internal_value(self, data: Any) -> Any:
        try:
            return validate_filter(data)
        except FilterError as exc:
            raise serializers.ValidationError(filter_errors(exc)) from exc

    def to_representation(self, value: Any) -> Any:
        return value


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
    # A sentence for people, and the code beside it for programs (empty while enabled).
    disabled_reason = serializers.CharField(source="disabled_reason_text", read_only=True)
    disabled_reason_code = serializers.ChoiceField(
        source="disabled_reason", choices=["", *Webhook.DisabledReason.values], read_only=True
    )
    previous_secret_expires_at = serializers.DateTimeField(
        source="previous_secret_until",
        read_only=True,
        allow_null=True,
        help_text="During a secret rotation's overlap, when the previous secret stops signing (until then it signs "
        "X-CyberCage-Signature, and webhook-signature carries both); null when no previous secret signs.",
    )

    filter = FilterField(read_only=True)

    class Meta:
        model = Webhook
        fields = [
            "id",
            "url",
            "events",
            "filter",
            "enabled",
            "description",
            "disabled_reason",
            "disabled_reason_code",
            "previous_secret_expires_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class WebhookCreatedSerializer(WebhookSerializer):
    """The create and rotate responses: the only ones that carry the secret.

    The secret is not readable from the row (it is encrypted), so the view hands the one it
    just set over in the context: ``WebhookCreatedSerializer(webhook, context={"secret": s})``.
    """

    secret = serializers.SerializerMethodField()

    class Meta(WebhookSerializer.Meta):
        fields = [*WebhookSerializer.Meta.fields, "secret"]
        read_only_fields = fields

    @extend_schema_field(serializers.CharField())
    def get_secret(self, webhook: Webhook) -> str:
        return self.context["secret"]


def _url_field(**kwargs: Any) -> StrictCharField:
    return StrictCharField(max_length=MAX_URL_LENGTH, trim_whitespace=True, **kwargs)


def _events_field(**kwargs: Any) -> serializers.ListField:
    return BoundedListField(child=StrictCharField(max_length=64), allow_empty=True, max_length=MAX_EVENTS, **kwargs)


def _secret_field() -> StrictCharField:
    return StrictCharField(
        required=False,
        min_length=MIN_SECRET_LENGTH,
        max_length=MAX_SECRET_LENGTH,
        trim_whitespace=False,
        validators=[validate_secret],
    )


class WebhookWriteSerializer(StrictSerializer):
    url = _url_field()
    events = _events_field()
    secret = _secret_field()
    enabled = StrictBooleanField(required=False, default=True)
    description = StrictCharField(required=False, allow_blank=True, max_length=500, default="")
    filter = FilterField(required=False, default=None)

    def validate_url(self, value: str) -> str:
        return validate_destination(value)

    def validate_events(self, value: list[str]) -> list[str]:
        return validate_event_list(value)


class WebhookUpdateSerializer(StrictSerializer):
    """PUT and PATCH both take partial bodies, as the document shows (``{"enabled": false}``)."""

    url = _url_field(required=False)
    events = _events_field(required=False)
    enabled = StrictBooleanField(required=False)
    description = StrictCharField(required=False, allow_blank=True, max_length=500)
    filter = FilterField(required=False)

    def validate_url(self, value: str) -> str:
        return validate_destination(value)

    def validate_events(self, value: list[str]) -> list[str]:
        return validate_event_list(value)

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict) and "secret" in data:
            raise serializers.ValidationError(
                {"secret": ["Cannot be set here; use POST /ui/api/webhooks/{id}/rotate-secret."]}
            )
        return super().to_internal_value(data)


OVERLAP_RANGE = (
    f"Must be 0 to {MAX_SECRET_OVERLAP_SECONDS} seconds ({MAX_SECRET_OVERLAP_SECONDS // 86400} days); "
    "0 stops using the old secret now."
)


class RotateSecretSerializer(StrictSerializer):
    secret = _secret_field()
    expire_previous_in = StrictIntegerField(
        required=False,
        min_value=0,
        max_value=MAX_SECRET_OVERLAP_SECONDS,
        error_messages={"min_value": OVERLAP_RANGE, "max_value": OVERLAP_RANGE},
        help_text="Seconds the previous secret keeps signing X-CyberCage-Signature (and webhook-signature beside the "
        "new one), so receivers not yet updated keep verifying. Default WEBHOOK_SECRET_OVERLAP; 0 switches both "
        "headers to the new secret at once (a leaked secret).",
    )


class FilterCheckSerializer(StrictSerializer):
    event = StrictCharField(max_length=64)
    data = serializers.JSONField(help_text="The event's data (a JSON object), as POST /ui/api/events takes it.")
    filter = FilterField(
        required=False,
        help_text="A filter to try instead of the webhook's own (the same rules as its filter); "
        "left out: the webhook's filter.",
    )

    def validate_data(self, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise serializers.ValidationError("Must be a JSON object.")
        return value


class EventTypeSerializer(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField()
    payload = serializers.CharField()
    data_shape = serializers.DictField()
    schema = serializers.DictField(
        help_text="The JSON Schema (Draft 2020-12) the event's data must match: POST /ui/api/events refuses data "
        "that does not, naming the path."
    )
    sample = serializers.DictField()
