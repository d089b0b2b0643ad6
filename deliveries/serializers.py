"""Delivery history as the API shows it."""

from __future__ import annotations

from rest_framework import serializers

from deliveries.models import Attempt, Delivery
from events import catalogue
from webhooks_project.serializers import StrictSerializer


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


class AttemptSerializer(serializers.ModelSerializer):
    class Meta:
        model = Attempt
        fields = ["number", "requested_at", "response_status", "duration_ms", "error", "response_body"]
        read_only_fields = fields


class DeliveryDetailSerializer(DeliverySerializer):
    attempt_log = AttemptSerializer(many=True, read_only=True)
    payload = serializers.SerializerMethodField()

    class Meta(DeliverySerializer.Meta):
        fields = [*DeliverySerializer.Meta.fields, "payload", "attempt_log"]
        read_only_fields = fields

    def get_payload(self, delivery: Delivery) -> dict:
        return delivery.event.envelope


class DeliveryFilterSerializer(StrictSerializer):
    status = serializers.ChoiceField(choices=Delivery.Status.choices, required=False)
    event = serializers.ChoiceField(choices=catalogue.names(), required=False)
    cursor = serializers.CharField(required=False)
    limit = serializers.IntegerField(required=False, min_value=1, max_value=200)


class TestEventSerializer(StrictSerializer):
    webhook_id = serializers.CharField(max_length=40)
    event = serializers.ChoiceField(choices=catalogue.names(), required=False, default="test.ping")


class RecoverSerializer(StrictSerializer):
    since = serializers.DateTimeField()
