"""Delivery history as the API shows it."""

from __future__ import annotations

from rest_framework import serializers

from deliveries.models import Attempt, Delivery
from deliveries.rates import Grade
from events import catalogue
from webhooks.filters import payload_matches
from webhooks_project.serializers import PageQuerySerializer, StrictCharField, StrictSerializer


class DeliverySerializer(serializers.ModelSerializer):
    event = serializers.CharField(source="event_type")

    class Meta:
        model = Delivery
        fields = [
            "id",
            "webhook_id",
            "event_id",
            "event",
            "status",
            "attempts",
            "response_status",
            "last_error",
            "created_at",
            "last_attempt_at",
            "next_attempt_at",
        ]
        read_only_fields = fields


class TestEventSentSerializer(DeliverySerializer):
    """A test event's delivery: sent whatever the webhook's filter says, and whether it would have matched."""

    filter_matches = serializers.SerializerMethodField(
        help_text="Whether the webhook's filter matches this event (true without a filter): an event like it "
        "emitted for real would be delivered. Test events are sent either way."
    )

    class Meta(DeliverySerializer.Meta):
        fields = [*DeliverySerializer.Meta.fields, "filter_matches"]
        read_only_fields = fields

    def get_filter_matches(self, delivery: Delivery) -> bool:
        return payload_matches(delivery.webhook.filter, delivery.event.payload)


class AttemptSerializer(serializers.ModelSerializer):
    class Meta:
        model = Attempt
        fields = [
            "number",
            "requested_at",
            "response_status",
            "duration_ms",
            "error",
            "response_body",
            "response_body_replaced",
        ]
        read_only_fields = fields


class DeliveryDetailSerializer(DeliverySerializer):
    attempt_log = AttemptSerializer(many=True, read_only=True)
    payload = serializers.SerializerMethodField()

    class Meta(DeliverySerializer.Meta):
        fields = [*DeliverySerializer.Meta.fields, "payload", "attempt_log"]
        read_only_fields = fields

    def get_payload(self, delivery: Delivery) -> dict:
        return delivery.event.envelope


def validate_event_type(name: str) -> str:
    """A catalogue type; anything else is refused with the valid types listed, as emit() does."""
    if not catalogue.is_known(name):
        raise serializers.ValidationError(catalogue.unknown_type_message(name))
    return name


class DeliveryFilterSerializer(PageQuerySerializer):
    """The history's query: its filters, and the page's ``limit`` and ``cursor``."""

    status = serializers.ChoiceField(choices=Delivery.Status.choices, required=False)
    event = serializers.CharField(required=False, max_length=64, validators=[validate_event_type])


class TestEventSerializer(StrictSerializer):
    webhook_id = StrictCharField(max_length=40)
    event = StrictCharField(required=False, default="test.ping", max_length=64, validators=[validate_event_type])


class RecoverSerializer(StrictSerializer):
    since = serializers.DateTimeField()


# Units of the stats window: ``30m``, ``24h``, ``7d``.
STATS_WINDOW_UNITS = {"m": 60, "h": 3600, "d": 86400}
# Nothing older than the retention period exists, so longer windows would only mislead.
STATS_MAX_WINDOW_DAYS = 90


class StatsQuerySerializer(StrictSerializer):
    window = serializers.RegexField(
        r"^[1-9][0-9]{0,4}[mhd]$",
        required=False,
        default="24h",
        error_messages={"invalid": "Use a number and a unit: m, h or d (e.g. 1h, 24h, 7d)."},
    )

    def validate_window(self, value: str) -> str:
        if int(value[:-1]) * STATS_WINDOW_UNITS[value[-1]] > STATS_MAX_WINDOW_DAYS * 86400:
            raise serializers.ValidationError(f"May be at most {STATS_MAX_WINDOW_DAYS}d.")
        return value


def window_seconds(window: str) -> int:
    return int(window[:-1]) * STATS_WINDOW_UNITS[window[-1]]


class LatencySerializer(serializers.Serializer):
    p50 = serializers.FloatField(allow_null=True)
    p95 = serializers.FloatField(allow_null=True)


class StatusTotalsSerializer(serializers.Serializer):
    pending = serializers.IntegerField()
    retrying = serializers.IntegerField()
    succeeded = serializers.IntegerField()
    failed = serializers.IntegerField()


class AttemptCountsSerializer(serializers.Serializer):
    total = serializers.IntegerField()
    succeeded = serializers.IntegerField(help_text="Answered 2xx.")
    failed = serializers.IntegerField(help_text="Any other answer, or none (connection error, timeout).")


class WebhookStatsSerializer(serializers.Serializer):
    """Deliveries created in the window, by status; their attempts, with the rates and latency of those."""

    window = serializers.CharField()
    totals = StatusTotalsSerializer(help_text="Deliveries created in the window, by current status.")
    attempts = AttemptCountsSerializer(help_text="Attempts made on those deliveries.")
    success_rate = serializers.FloatField(
        allow_null=True,
        help_text="Successful attempts / attempts, rounded down to 4 places; null when nothing was attempted.",
    )
    failure_rate = serializers.FloatField(
        allow_null=True, help_text="1 - success_rate: failed attempts / attempts, rounded up; null likewise."
    )
    health = serializers.ChoiceField(
        choices=[grade.value for grade in Grade],
        allow_null=True,
        help_text="healthy: success_rate >= 0.99; degraded: below; failing: under 0.90; null without attempts.",
    )
    latency_ms = LatencySerializer(help_text="Of those attempts, in ms to a tenth.")
    last_status = serializers.ChoiceField(
        choices=Delivery.Status.choices, allow_null=True, help_text="Status of the most recently attempted delivery."
    )
    filtered = serializers.IntegerField(
        help_text="Events of the window, of the types the webhook subscribes to, that its filter skipped (no "
        "delivery), counted since the filter, the events or enabled last changed; 0 without a filter or while disabled."
    )
