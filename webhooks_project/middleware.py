"""Refuse oversized API bodies with a 413 before reading them; the admin's security headers."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from webhooks_project.errors import json_error

API_PREFIX = "/ui/api/"
ADMIN_PREFIX = "/admin/"

# The server-rendered pages' policy (the dashboard's and the admin's): scripts and styles from
# our static files only, no inline script or style attribute, no framing. The dashboard's charts
# are inline SVG drawn with presentation attributes, which the policy allows.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)


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


class AdminContentSecurityPolicyMiddleware:
    """The admin's pages get CONTENT_SECURITY_POLICY, as the dashboard's do: Django's admin runs
    no inline script or style, so a script injected through a stored value could not run."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if request.path.startswith(ADMIN_PREFIX):
            response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        return response
