"""``/ui/api/webhooks`` and ``/ui/api/event-types``: thin views over services and selectors."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from events.catalogue import EVENT_TYPES
from events.schemas import DIALECT, data_schema
from events.services import EmitError
from webhooks import selectors, services
from webhooks.serializers import (
    EventTypeSerializer,
    FilterCheckSerializer,
    RotateSecretSerializer,
    WebhookCreatedSerializer,
    WebhookSerializer,
    WebhookUpdateSerializer,
    WebhookWriteSerializer,
)
from webhooks_project.openapi import ErrorSerializer
from webhooks_project.serializers import PageQuerySerializer


class WebhookListView(GenericAPIView):
    serializer_class = WebhookSerializer

    def get_queryset(self):
        return selectors.webhooks_of(self.request.user.organization)

    @extend_schema(parameters=[OpenApiParameter("limit", int)], responses=WebhookSerializer(many=True))
    def get(self, request: Request) -> Response:
        PageQuerySerializer(data=request.query_params.dict()).is_valid(raise_exception=True)
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(WebhookSerializer(page, many=True).data)

    @extend_schema(
        request=WebhookWriteSerializer,
        responses={
            201: WebhookCreatedSerializer,
            409: OpenApiResponse(ErrorSerializer, description="The organization has reached its webhook limit."),
        },
    )
    def post(self, request: Request) -> Response:
        serializer = WebhookWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        created = services.webhook_create(organization=request.user.organization, **serializer.validated_data)
        body = WebhookCreatedSerializer(created.webhook, context={"secret": created.secret}).data
        return Response(body, status=status.HTTP_201_CREATED)


class WebhookDetailView(APIView):
    @extend_schema(responses=WebhookSerializer)
    def get(self, request: Request, webhook_id: str) -> Response:
        webhook = selectors.webhook_get(request.user.organization, webhook_id)
        return Response(WebhookSerializer(webhook).data)

    @extend_schema(request=WebhookUpdateSerializer, responses=WebhookSerializer)
    def put(self, request: Request, webhook_id: str) -> Response:
        webhook = selectors.webhook_get(request.user.organization, webhook_id)
        serializer = WebhookUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        webhook = services.webhook_update(webhook=webhook, changes=serializer.validated_data)
        return Response(WebhookSerializer(webhook).data)

    @extend_schema(request=WebhookUpdateSerializer, responses=WebhookSerializer)
    def patch(self, request: Request, webhook_id: str) -> Response:
        return self.put(request, webhook_id)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, webhook_id: str) -> Response:
        webhook = selectors.webhook_get(request.user.organization, webhook_id)
        services.webhook_delete(webhook=webhook)
        return Response(status=status.HTTP_204_NO_CONTENT)


class WebhookRotateSecretView(APIView):
    @extend_schema(request=RotateSecretSerializer, responses=WebhookCreatedSerializer)
    def post(self, request: Request, webhook_id: str) -> Response:
        webhook = selectors.webhook_get(request.user.organization, webhook_id)
        serializer = RotateSecretSerializer(data=request.data or {})
        serializer.is_valid(raise_exception=True)
        secret = services.webhook_rotate_secret(webhook=webhook, **serializer.validated_data)
        return Response(WebhookCreatedSerializer(webhook, context={"secret": secret}).data)


class WebhookExpirePreviousSecretView(APIView):
    @extend_schema(request=None, responses=WebhookSerializer)
    def post(self, request: Request, webhook_id: str) -> Response:
        webhook = selectors.webhook_get(request.user.organization, webhook_id)
        services.webhook_expire_previous_secret(webhook=webhook)
        return Response(WebhookSerializer(webhook).data)


class WebhookFilterCheckView(APIView):
    @extend_schema(
        summary="Try a filter on a payload, sending nothing",
        request=FilterCheckSerializer,
        responses=inline_serializer("FilterCheckResult", {"matches": serializers.BooleanField()}),
    )
    def post(self, request: Request, webhook_id: str) -> Response:
        webhook = selectors.webhook_get(request.user.organization, webhook_id)
        body = FilterCheckSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        wanted = body.validated_data
        try:
            matches = selectors.filter_matches_event(
                request.user.organization,
                filter=wanted.get("filter", webhook.filter),
                event_type=wanted["event"],
                data=wanted["data"],
            )
        except EmitError as exc:
            raise serializers.ValidationError(exc.fields) from exc
        return Response({"matches": matches})


class EventTypeListView(APIView):
    @extend_schema(
        responses=inline_serializer(
            "EventTypeList",
            {"results": EventTypeSerializer(many=True), "next": serializers.CharField(allow_null=True)},
        )
    )
    def get(self, request: Request) -> Response:
        types = [
            {
                "name": t.name,
                "description": t.description,
                "payload": t.payload,
                "data_shape": t.data_shape,
                "schema": {"$schema": DIALECT, **data_schema(t.name)},
                "sample": t.sample,
            }
            for t in EVENT_TYPES.values()
        ]
        return Response({"results": types, "next": None})
