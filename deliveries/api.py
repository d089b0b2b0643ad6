"""Delivery history, test events, manual retry and recovery under ``/ui/api/webhooks``."""

from __future__ import annotations

from datetime import timedelta

from django.http import Http404, HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from deliveries import selectors, services
from deliveries.models import Delivery
from deliveries.serializers import (
    DeliveryDetailSerializer,
    DeliveryFilterSerializer,
    DeliverySerializer,
    RecoverSerializer,
    StatsQuerySerializer,
    TestEventSentSerializer,
    TestEventSerializer,
    WebhookStatsSerializer,
    window_seconds,
)
from webhooks.selectors import webhook_get
from webhooks_project.openapi import ErrorSerializer


class DeliveryListView(GenericAPIView):
    serializer_class = DeliverySerializer

    @extend_schema(
        parameters=[
            OpenApiParameter("status", str, enum=["pending", "retrying", "succeeded", "failed"]),
            OpenApiParameter("event", str),
            OpenApiParameter("limit", int),
        ],
        responses=DeliverySerializer(many=True),
    )
    def get(self, request: Request, webhook_id: str) -> Response:
        webhook = webhook_get(request.user.organization, webhook_id)
        filters = DeliveryFilterSerializer(data=request.query_params.dict())
        filters.is_valid(raise_exception=True)
        queryset = selectors.deliveries_of(
            webhook, status=filters.validated_data.get("status"), event_type=filters.validated_data.get("event")
        )
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(DeliverySerializer(page, many=True).data)


class DeliveryDetailView(APIView):
    @extend_schema(responses=DeliveryDetailSerializer)
    def get(self, request: Request, webhook_id: str, delivery_id: str) -> Response:
        webhook = webhook_get(request.user.organization, webhook_id)
        delivery = selectors.delivery_get(webhook, delivery_id)
        return Response(DeliveryDetailSerializer(delivery).data)


def payload_response(delivery: Delivery) -> HttpResponse:
    """The delivery's body as it was sent and signed, byte for byte (the API's route and the
    dashboard's link both answer with this); saved, it is named for the delivery."""
    response = HttpResponse(selectors.delivery_body(delivery), content_type="application/json")
    response["Content-Disposition"] = f'inline; filename="{delivery.id}.json"'
    return response


class DeliveryPayloadView(APIView):
    @extend_schema(
        summary="The exact body a delivery sent",
        description="The request body byte for byte, as signed: verify a signature against it, or read a"
        " payload too long for the delivery's page.",
        responses={(200, "application/json"): OpenApiResponse(OpenApiTypes.OBJECT, description="The body as sent.")},
    )
    def get(self, request: Request, webhook_id: str, delivery_id: str) -> HttpResponse:
        webhook = webhook_get(request.user.organization, webhook_id)
        return payload_response(selectors.delivery_get(webhook, delivery_id))


# Retry, recover and test events refuse a disabled webhook (deliveries.services).
DISABLED_CONFLICT = OpenApiResponse(ErrorSerializer, description="The webhook is disabled: enable it first.")


class DeliveryRetryView(APIView):
    @extend_schema(request=None, responses={202: DeliverySerializer, 409: DISABLED_CONFLICT})
    def post(self, request: Request, webhook_id: str, delivery_id: str) -> Response:
        webhook = webhook_get(request.user.organization, webhook_id)
        delivery = selectors.delivery_get(webhook, delivery_id)
        delivery = services.delivery_retry(delivery=delivery)
        return Response(DeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)


class WebhookRecoverView(APIView):
    @extend_schema(
        request=RecoverSerializer,
        responses={
            202: inline_serializer("RecoverAccepted", {"recovering": serializers.IntegerField()}),
            409: DISABLED_CONFLICT,
        },
    )
    def post(self, request: Request, webhook_id: str) -> Response:
        webhook = webhook_get(request.user.organization, webhook_id)
        body = RecoverSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        count = services.webhook_recover(webhook=webhook, since=body.validated_data["since"])
        return Response({"recovering": count}, status=status.HTTP_202_ACCEPTED)


class TestEventView(APIView):
    @extend_schema(
        request=TestEventSerializer,
        responses={
            202: TestEventSentSerializer,
            404: OpenApiResponse(ErrorSerializer, description="No such webhook."),
            409: DISABLED_CONFLICT,
        },
    )
    def post(self, request: Request) -> Response:
        body = TestEventSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        webhook_id = body.validated_data["webhook_id"]
        try:
            webhook = webhook_get(request.user.organization, webhook_id)
        except Http404:
            # The id came in the body, not the path: say which field named nothing.
            message = f"No webhook {webhook_id!r} in this organization (GET /ui/api/webhooks lists them)."
            raise NotFound({"webhook_id": [message]}) from None
        delivery = services.delivery_send_test(webhook=webhook, event_type=body.validated_data["event"])
        return Response(TestEventSentSerializer(delivery).data, status=status.HTTP_202_ACCEPTED)


class WebhookStatsView(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("window", str, description="e.g. 1h, 24h (default), 7d", pattern=r"^[1-9][0-9]{0,4}[mhd]$")
        ],
        responses={200: WebhookStatsSerializer},
    )
    def get(self, request: Request, webhook_id: str) -> Response:
        webhook = webhook_get(request.user.organization, webhook_id)
        query = StatsQuerySerializer(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        window = query.validated_data["window"]
        stats = selectors.webhook_stats(webhook, window=timedelta(seconds=window_seconds(window)))
        body = {
            "window": window,
            "totals": stats.totals,
            "attempts": {
                "total": stats.rates.attempts,
                "succeeded": stats.rates.succeeded,
                "failed": stats.rates.failed,
            },
            "success_rate": stats.success_rate,
            "failure_rate": stats.failure_rate,
            "health": stats.rates.grade,
            "latency_ms": {"p50": stats.latency_p50_ms, "p95": stats.latency_p95_ms},
            "last_status": stats.last_status,
            "filtered": stats.filtered,
        }
        return Response(WebhookStatsSerializer(body).data)
