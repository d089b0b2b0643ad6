"""Errors are part of the interface: every API error is JSON that says what and which field.

Shape: ``{"error": "<code>", "message": "<human text>", "fields": {"<field>": ["<text>"]}}``
(``fields`` only for validation errors).
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from webhooks_project.exceptions import SEND_API_KEY, SEND_JSON, Conflict

_CODES = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


def error_body(status_code: int, message: str, fields: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"error": _CODES.get(status_code, "error"), "message": message}
    if fields:
        body["fields"] = fields
    return body


def _flatten(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested error detail as ``{"field.sub": ["message", ...]}``."""
    if isinstance(detail, dict):
        out: dict[str, list[str]] = {}
        for key, value in detail.items():
            if isinstance(key, int):  # a list item's errors (ListField): "events[0]"
                out.update(_flatten(value, f"{prefix}[{key}]"))
                continue
            name = key if key != "non_field_errors" else "body"
            out.update(_flatten(value, f"{prefix}.{name}" if prefix else name))
        return out
    if isinstance(detail, list):
        if all(not isinstance(item, (dict, list)) for item in detail):
            return {prefix or "body": [str(item) for item in detail]}
        out = {}
        for index, value in enumerate(detail):
            out.update(_flatten(value, f"{prefix}[{index}]"))
        return out
    return {prefix or "body": [str(detail)]}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, RequestDataTooBig):
        return Response(error_body(413, "The request body is too large."), status=413)
    if isinstance(exc, Conflict):
        return Response(error_body(status.HTTP_409_CONFLICT, exc.message), status=status.HTTP_409_CONFLICT)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    detail = getattr(exc, "detail", str(exc))
    if isinstance(exc, exceptions.ValidationError) or isinstance(detail, dict):
        # A validation error, or another error about one field (a body's webhook_id not found).
        fields = _flatten(detail)
        first_field, messages = next(iter(fields.items()))
        message = f"{first_field}: {messages[0]}" if first_field != "body" else messages[0]
        response.data = error_body(response.status_code, message, fields)
    elif isinstance(exc, exceptions.NotAuthenticated):
        response.data = error_body(response.status_code, SEND_API_KEY)
    elif isinstance(exc, exceptions.UnsupportedMediaType):
        response.data = error_body(response.status_code, SEND_JSON)
    elif isinstance(exc, exceptions.ParseError):
        # The body itself could not be read (malformed JSON): the "field" at fault is the body.
        response.data = error_body(status.HTTP_400_BAD_REQUEST, str(exc.detail), {"body": [str(exc.detail)]})
    else:
        response.data = error_body(response.status_code, str(detail))
    return response


def json_error(status_code: int, message: str) -> JsonResponse:
    return JsonResponse(error_body(status_code, message), status=status_code)
