"""Who may see a dashboard page, and what every page is sent with.

Every page is for a signed-in member of an organization and is scoped to it: the views look
everything up through the selectors the API uses, with ``request.organization``, so another
organization's ids are simply not found (a 404, never a 403). Every page carries the strict
Content-Security-Policy and is never cached: a secret revealed once must not come back from a
cache.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib.auth import logout
from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.cache import add_never_cache_headers

from webhooks.selectors import organization_of_user
from webhooks_project.middleware import CONTENT_SECURITY_POLICY

View = Callable[..., HttpResponse]


def secure_headers(view: View) -> View:
    """The Content-Security-Policy, and no caching, on whatever ``view`` answers."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = view(request, *args, **kwargs)
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        add_never_cache_headers(response)
        return response

    return wrapper


def member_required(view: View) -> View:
    """Signed in, and a member of an organization (``request.organization``); else out."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path(), settings.LOGIN_URL)
        organization = organization_of_user(request.user.pk)
        if organization is None:
            logout(request)
            return render(request, "dashboard/forbidden.html", status=403)
        request.organization = organization  # type: ignore[attr-defined]
        try:
            return view(request, *args, **kwargs)
        except Http404:
            return render_page(request, "dashboard/not_found.html", {}, status=404)

    return secure_headers(wrapper)


def render_page(request: HttpRequest, template: str, context: dict[str, Any], status: int = 200) -> HttpResponse:
    """``template`` with the member's organization in its context (the page header names it)."""
    context = {"organization": getattr(request, "organization", None), **context}
    return render(request, template, context, status=status)
