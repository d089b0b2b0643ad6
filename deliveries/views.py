"""The dashboard: Organization Settings › Integrations › Webhooks, rendered on the server.

It lives in the deliveries app because it joins webhooks and their deliveries. Every page is
scoped to the signed-in user's organization through the selectors the API uses (another
organization's ids are simply not found), sends a Content-Security-Policy and is never cached.
A signing secret appears once: on the page right after creation or rotation, handed over in
the session (encrypted, popped when shown; webhooks.reveal), never in a URL.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import wraps
from typing import Any
from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth import views as auth_views
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import NON_FIELD_ERRORS
from django.core.paginator import Paginator
from django.db import transaction
from django.forms import Form
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from deliveries import selectors, services
from deliveries.forms import DeliveryFilterForm, EmailLoginForm, SendTestEventForm, WebhookCreateForm, WebhookEditForm
from deliveries.models import Delivery
from events import catalogue
from webhooks import reveal
from webhooks import services as webhook_services
from webhooks.models import Membership, Webhook
from webhooks.selectors import webhook_get, webhooks_of
from webhooks_project.exceptions import Conflict
from webhooks_project.middleware import CONTENT_SECURITY_POLICY

# A dashboard session lasts a working day; signing in again after that is cheap.
SESSION_SECONDS = 8 * 3600
# What the webhook page reveals once, handed over by create and rotate (webhooks.reveal).
SECRET_REVEAL = "webhook-secret"
WEBHOOKS_PAGE_SIZE = 25
HISTORY_PAGE_SIZE = 25
DAY = timedelta(hours=24)
WEEK = timedelta(days=7)
# Buckets of the two charts: hours over a day, quarter days over a week; an x-axis label
# every 6 hours and every day.
DAY_BUCKETS = 24
WEEK_BUCKETS = 28
DAY_LABEL_EVERY = 6
WEEK_LABEL_EVERY = 4


# --- Access ------------------------------------------------------------------------------


def _secure_headers(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = view(request, *args, **kwargs)
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        add_never_cache_headers(response)
        return response

    return wrapper


def member_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Signed in, and a member of an organization (``request.organization``); else out."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path(), settings.LOGIN_URL)
        membership = Membership.objects.select_related("organization").filter(user_id=request.user.pk).first()
        if membership is None:
            logout(request)
            return render(request, "dashboard/forbidden.html", status=403)
        request.organization = membership.organization  # type: ignore[attr-defined]
        try:
            return view(request, *args, **kwargs)
        except Http404:
            return _render(request, "dashboard/not_found.html", {}, status=404)

    return _secure_headers(wrapper)


def _render(request: HttpRequest, template: str, context: dict[str, Any], status: int = 200) -> HttpResponse:
    context = {"organization": getattr(request, "organization", None), **context}
    return render(request, template, context, status=status)


class LoginView(auth_views.LoginView):
    template_name = "dashboard/login.html"
    authentication_form = EmailLoginForm
    redirect_authenticated_user = True

    def get_default_redirect_url(self) -> str:
        return reverse("dashboard:webhook-list")

    def get_redirect_url(self) -> str:
        # A ``next`` back to this page would send a signed-in user round in circles (Django
        # refuses with a ValueError: a 500); the webhooks list is where they meant to go.
        url = super().get_redirect_url()
        return "" if url and urlsplit(url).path == self.request.path else url

    def form_valid(self, form: Form) -> HttpResponse:
        response = super().form_valid(form)  # rotates the session key and the CSRF token
        self.request.session.set_expiry(SESSION_SECONDS)
        return response

    def form_invalid(self, form: Form) -> HttpResponse:
        response = super().form_invalid(form)
        if form.has_error(NON_FIELD_ERRORS, "throttled"):
            response.status_code = 429
        return response


login_view = _secure_headers(LoginView.as_view())
logout_view = _secure_headers(auth_views.LogoutView.as_view(next_page="dashboard:login"))


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    return redirect("dashboard:webhook-list")


# --- Webhooks ----------------------------------------------------------------------------


@member_required
@require_GET
def webhook_list(request: HttpRequest) -> HttpResponse:
    paginator = Paginator(webhooks_of(request.organization).order_by("-created_at", "-id"), WEBHOOKS_PAGE_SIZE)
    page = paginator.get_page(request.GET.get("page"))
    rows = [{"webhook": webhook, "stats": _stats(webhook, DAY)} for webhook in page]
    return _render(request, "dashboard/webhook_list.html", {"page": page, "rows": rows})


@member_required
@require_http_methods(["GET", "POST"])
def webhook_create(request: HttpRequest) -> HttpResponse:
    form = WebhookCreateForm(data=request.POST if request.method == "POST" else None)
    if form.is_bound and form.is_valid():
        data = form.cleaned_data
        try:
            created = webhook_services.webhook_create(
                organization=request.organization,
                url=data["url"],
                events=data["events"],
                secret=data["secret"] or None,
                enabled=data["enabled"],
                description=data["description"],
            )
        except Conflict as exc:
            form.add_error(None, exc.message)
        else:
            reveal.hand_over(
                request, kind=SECRET_REVEAL, object_id=created.webhook.id, secret=created.secret, rotated=False
            )
            messages.success(request, "Webhook created.")
            return redirect("dashboard:webhook-detail", webhook_id=created.webhook.id)
    return _render(request, "dashboard/webhook_form.html", {"form": form, "events": _event_options(form)})


@member_required
@require_http_methods(["GET", "POST"])
def webhook_edit(request: HttpRequest, webhook_id: str) -> HttpResponse:
    webhook = webhook_get(request.organization, webhook_id)
    if request.method == "POST":
        form = WebhookEditForm(data=request.POST)
        if form.is_valid():
            webhook_services.webhook_update(webhook=webhook, changes=form.cleaned_data)
            messages.success(request, "Webhook saved.")
            return redirect("dashboard:webhook-detail", webhook_id=webhook.id)
    else:
        form = WebhookEditForm(
            initial={
                "url": webhook.url,
                "events": webhook.events,
                "enabled": webhook.enabled,
                "description": webhook.description,
            }
        )
    return _render(
        request, "dashboard/webhook_form.html", {"form": form, "events": _event_options(form), "webhook": webhook}
    )


@member_required
@require_GET
def webhook_detail(request: HttpRequest, webhook_id: str) -> HttpResponse:
    webhook = webhook_get(request.organization, webhook_id)
    filters = DeliveryFilterForm(data=request.GET)
    filters.is_valid()  # an invalid filter is shown as such and ignored
    wanted = filters.cleaned_data
    history = _history(webhook, wanted)
    context = {
        "webhook": webhook,
        "secret": reveal.take(request, kind=SECRET_REVEAL, object_id=webhook.id),
        "previous_secret_until": _previous_secret_until(webhook),
        "day": _stats(webhook, DAY),
        "week": _stats(webhook, WEEK),
        "charts": [
            _chart(
                "Deliveries per hour",
                selectors.delivery_series(webhook, window=DAY, buckets=DAY_BUCKETS),
                unit="h",
                label_every=DAY_LABEL_EVERY,
            ),
            _chart(
                "Deliveries per 6 hours",
                selectors.delivery_series(webhook, window=WEEK, buckets=WEEK_BUCKETS),
                unit="d",
                label_every=WEEK_LABEL_EVERY,
            ),
        ],
        "filters": filters,
        "history": history,
        "test_form": SendTestEventForm(auto_id="test-%s"),
    }
    return _render(request, "dashboard/webhook_detail.html", context)


@member_required
@require_POST
def webhook_send_test(request: HttpRequest, webhook_id: str) -> HttpResponse:
    webhook = webhook_get(request.organization, webhook_id)
    form = SendTestEventForm(data=request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a known event type to send.")
    else:
        delivery = services.delivery_send_test(webhook=webhook, event_type=form.cleaned_data["event"])
        messages.success(request, f"Test event {delivery.event_type} queued as delivery {delivery.id}.")
    return redirect("dashboard:webhook-detail", webhook_id=webhook.id)


@member_required
@require_POST
def webhook_set_enabled(request: HttpRequest, webhook_id: str, enabled: bool) -> HttpResponse:
    webhook = webhook_get(request.organization, webhook_id)
    webhook_services.webhook_update(webhook=webhook, changes={"enabled": enabled})
    messages.success(request, "Webhook enabled." if enabled else "Webhook disabled: no events are sent to it.")
    return redirect("dashboard:webhook-detail", webhook_id=webhook.id)


@member_required
@require_POST
def webhook_rotate_secret(request: HttpRequest, webhook_id: str) -> HttpResponse:
    webhook = webhook_get(request.organization, webhook_id)
    secret = webhook_services.webhook_rotate_secret(webhook=webhook)
    reveal.hand_over(request, kind=SECRET_REVEAL, object_id=webhook.id, secret=secret, rotated=True)
    return redirect("dashboard:webhook-detail", webhook_id=webhook.id)


@member_required
@require_http_methods(["GET", "POST"])
def webhook_delete(request: HttpRequest, webhook_id: str) -> HttpResponse:
    webhook = webhook_get(request.organization, webhook_id)
    if request.method == "POST":
        webhook_services.webhook_delete(webhook=webhook)
        messages.success(request, f"Webhook {webhook.url} deleted.")
        return redirect("dashboard:webhook-list")
    return _render(request, "dashboard/webhook_delete.html", {"webhook": webhook})


# --- Deliveries --------------------------------------------------------------------------


@member_required
@require_GET
def delivery_detail(request: HttpRequest, webhook_id: str, delivery_id: str) -> HttpResponse:
    webhook = webhook_get(request.organization, webhook_id)
    delivery = selectors.delivery_get(webhook, delivery_id)
    context = {
        "webhook": webhook,
        "delivery": delivery,
        "envelope": json.dumps(delivery.event.envelope, indent=2, ensure_ascii=False),
        "attempts": list(delivery.attempt_log.order_by("number")),
    }
    return _render(request, "dashboard/delivery_detail.html", context)


@member_required
@require_POST
def delivery_retry(request: HttpRequest, webhook_id: str, delivery_id: str) -> HttpResponse:
    webhook = webhook_get(request.organization, webhook_id)
    delivery = selectors.delivery_get(webhook, delivery_id)
    with transaction.atomic():
        services.delivery_retry(delivery=delivery)
    messages.success(request, "Retry queued: a new attempt will appear below.")
    return redirect("dashboard:delivery-detail", webhook_id=webhook.id, delivery_id=delivery.id)


# --- Helpers -----------------------------------------------------------------------------


def _previous_secret_until(webhook: Webhook) -> datetime | None:
    until = webhook.previous_secret_expires_at
    if webhook.previous_secret_encrypted and until and until > timezone.now():
        return until
    return None


def _event_options(form: Form) -> list[dict[str, Any]]:
    """The event checkboxes, each with its catalogue description."""
    options = []
    for checkbox in form["events"]:
        name = checkbox.data["value"]
        kind = catalogue.EVENT_TYPES.get(name)
        description = kind.description if kind else "Every event type, including ones added later"
        options.append({"checkbox": checkbox, "description": description})
    return options


def _percent(rate: float | None) -> str:
    if rate is None:
        return "—"
    text = f"{rate * 100:.1f}".removesuffix(".0")
    return f"{text}%"


def _stats(webhook: Webhook, window: timedelta) -> dict[str, Any]:
    stats = selectors.webhook_stats(webhook, window=window)
    rate = stats.success_rate
    return {
        "totals": stats.totals,
        "total": sum(stats.totals.values()),
        "success_rate": _percent(rate),
        "failure_rate": _percent(None if rate is None else 1 - rate),
        "p50": None if stats.latency_p50_ms is None else round(stats.latency_p50_ms),
        "p95": None if stats.latency_p95_ms is None else round(stats.latency_p95_ms),
        "last_status": stats.last_status,
    }


@dataclass(frozen=True)
class History:
    deliveries: list[Delivery]
    newer_url: str | None
    older_url: str | None
    filtered: bool


def _history(webhook: Webhook, wanted: dict[str, Any]) -> History:
    """One page of the delivery history, newest first, by keyset on the time-ordered id."""
    queryset = selectors.deliveries_of(webhook, status=wanted.get("status"), event_type=wanted.get("event"))
    if wanted.get("after"):
        rows = list(queryset.filter(id__gt=wanted["after"]).order_by("id")[:HISTORY_PAGE_SIZE])[::-1]
    elif wanted.get("before"):
        rows = list(queryset.filter(id__lt=wanted["before"]).order_by("-id")[:HISTORY_PAGE_SIZE])
    else:
        rows = list(queryset.order_by("-id")[:HISTORY_PAGE_SIZE])
    keep = {key: wanted[key] for key in ("status", "event") if wanted.get(key)}

    def link(**cursor: str) -> str:
        return "?" + urlencode({**keep, **cursor}) + "#history"

    newer = rows and queryset.filter(id__gt=rows[0].id).exists()
    older = rows and queryset.filter(id__lt=rows[-1].id).exists()
    return History(
        deliveries=rows,
        newer_url=link(after=rows[0].id) if newer else None,
        older_url=link(before=rows[-1].id) if older else None,
        filtered=bool(keep),
    )


# --- Charts ------------------------------------------------------------------------------

CHART_WIDTH = 560
CHART_HEIGHT = 170
CHART_LEFT = 34  # room for the y-axis labels
CHART_RIGHT = 8
CHART_TOP = 10
CHART_BOTTOM = 22  # room for the x-axis labels


@dataclass(frozen=True)
class Bar:
    x: float
    width: float
    succeeded: int
    failed: int
    succeeded_y: float
    succeeded_height: float
    failed_y: float
    failed_height: float
    title: str


@dataclass(frozen=True)
class Chart:
    title: str
    bars: list[Bar]
    y_ticks: list[tuple[float, int]]
    x_labels: list[tuple[float, str]]
    succeeded: int
    failed: int
    width: int = CHART_WIDTH
    height: int = CHART_HEIGHT
    left: int = CHART_LEFT
    right: int = CHART_WIDTH - CHART_RIGHT
    top: int = CHART_TOP
    bottom: int = CHART_HEIGHT - CHART_BOTTOM
    plot_height: int = CHART_HEIGHT - CHART_TOP - CHART_BOTTOM
    center_x: float = (CHART_LEFT + CHART_WIDTH - CHART_RIGHT) / 2
    center_y: float = (CHART_TOP + CHART_HEIGHT - CHART_BOTTOM) / 2


def _nice_ceiling(value: int) -> int:
    """The smallest 1, 2 or 5 times a power of ten that is at least ``value``."""
    if value <= 1:
        return 1
    magnitude = 10 ** math.floor(math.log10(value))
    return next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= value)


def _chart(title: str, series: list[tuple[datetime, int, int]], *, unit: str, label_every: int) -> Chart:
    """Stacked bars, succeeded below failed, with the geometry computed here for inline SVG."""
    plot_width = CHART_WIDTH - CHART_LEFT - CHART_RIGHT
    plot_height = CHART_HEIGHT - CHART_TOP - CHART_BOTTOM
    bottom = CHART_HEIGHT - CHART_BOTTOM
    y_max = _nice_ceiling(max((ok + failed for _, ok, failed in series), default=0))
    slot = plot_width / max(len(series), 1)
    step = series[1][0] - series[0][0] if len(series) > 1 else timedelta(0)
    bars = []
    for index, (start, ok, failed) in enumerate(series):
        ok_height = ok / y_max * plot_height
        failed_height = failed / y_max * plot_height
        end = start + step
        span = f"{start:%b %d %H:%M}–{end:%H:%M} UTC"
        bars.append(
            Bar(
                x=round(CHART_LEFT + index * slot + slot * 0.15, 2),
                width=round(slot * 0.7, 2),
                succeeded=ok,
                failed=failed,
                succeeded_y=round(bottom - ok_height, 2),
                succeeded_height=round(ok_height, 2),
                failed_y=round(bottom - ok_height - failed_height, 2),
                failed_height=round(failed_height, 2),
                title=f"{span}: {ok} succeeded, {failed} failed",
            )
        )
    ticks = sorted({0, y_max, *([y_max // 2] if y_max >= 2 and y_max % 2 == 0 else [])})
    y_ticks = [(round(bottom - tick / y_max * plot_height, 2), tick) for tick in ticks]
    x_labels = []
    for index in range(0, len(series), label_every):
        ago = (len(series) - index) * step
        amount = round(ago.total_seconds() / (3600 if unit == "h" else 86400))
        x_labels.append((round(CHART_LEFT + index * slot, 2), f"{amount}{unit} ago"))
    x_labels.append((float(CHART_WIDTH - CHART_RIGHT), "now"))
    return Chart(
        title=title,
        bars=bars,
        y_ticks=y_ticks,
        x_labels=x_labels,
        succeeded=sum(ok for _, ok, _ in series),
        failed=sum(failed for _, _, failed in series),
    )
