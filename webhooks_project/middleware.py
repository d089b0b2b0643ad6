"""Refuse oversized API bodies with a 413 before reading them."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from webhooks_project.errors import json_error

API_PREFIX = "/ui/api/"


class PayloadLimitMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path.startswith(API_PREFIX):
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                return json_error(400, "Content-Length is not a number.")
            if length > settings.WEBHOOK_MAX_PAYLOAD_BYTES:
                return json_error(413, f"The request body exceeds {settings.WEBHOOK_MAX_PAYLOAD_BYTES} bytes.")
        return self.get_response(request)
