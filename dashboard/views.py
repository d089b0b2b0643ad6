"""The dashboard's pages: Organization Settings › Integrations › Webhooks, rendered on the server.

Thin views: parse the request, call the services and selectors the REST API calls, render.
Access and headers are ``access``'s; the history's pages ``history``'s; the charts'
geometry ``charts``'s. A signing secret appears once: on the page right after creation or
rotation, handed over in the session (encrypted, popped when shown; ``webhooks.reveal``),
never in a URL.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.core.paginator import Paginator
from django.forms import Form
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from dashboard import charts
from dashboard.access import member_required, render_page, secure_headers
from dashboard.forms import (
    FILTER_EXAMPLES,
    DeliveryFilterForm,
    EmailLoginForm,
    RotateSecretForm,
    SendTestEventForm,
    WebhookCreateForm,
    WebhookEditForm,
    duration_text,
    event_options,
    filter_text,
    parse_filter,
)
from dashboard.history import history_page
from dashboard.stats import DAY, WEEK, list_health, window_stats
from deliveries import selectors, services
from deliveries.api import payload_response
from events import catalogue
from events.encoding import pretty
from events.preview import payload_preview
from webhooks import reveal
from webhooks import services as webhook_services
from webhooks.filters import payload_matches
from webhooks.selectors import filter_matches_event, webhook_get, webhooks_of
from webhooks_project.exceptions import Conflict

# A dashboard session lasts a working day; signing in again after that is cheap.
SESSION_SECONDS = 8 * 3600
# What the webhook page reveals once, handed over by create and rotate (webhooks.reveal).
SECRET_REVEAL = "webhook-secret"
WEBHOOKS_PAGE_SIZE = 25


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


login_view = secure_headers(LoginView.as_view())
logout_view = secure_headers(auth_views.LogoutView.as_view(next_page="dashboard:login"))


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    return redirect("dashboard:webhook-list")


# --- Webhooks ----------------------------------------------------------------------------


@member_required
@require_GET
def webhook_list(request: HttpRequest) -> HttpResponse:
    paginator = Paginator(webhooks_of(request.organization).order_by("-created_at", "-id"), WEBHOOKS_PAGE_SIZE)
    page = paginator.get_page(request.GET.get("page"))
    webhooks = list(page)
    health = list_health(webhooks)
    rows = [{"webhook": webhook, "stats": health[webhook.id]} for webhook in webhooks]
    return render_page(request, "dashboard/webhook_list.html", {"page": page, "rows": rows})


def _form_page(request: HttpRequest, form: Form, webhook=None, tried: dict | None = None) -> HttpResponse:
    context = {
        "form": form,
        "events": event_options(form),
        "webhook": webhook,
        "filter_examples": [label for label, _ in FILTER_EXAMPLES],
        "tried": tried,
    }
    return render_page(request, "dashboard/webhook_form.html", context)


def _filter_tool(request: HttpRequest, form_class: type[Form], webhook=None) -> HttpResponse | None:
    """The form's filter buttons, which save nothing: an example put in the box, or "Try it"
    (the box's filter against the chosen event type's sample). None for a plain save."""
    post = request.POST
    if "example" not in post and "try" not in post:
        return None
    initial: dict = {name: post.get(name) for name in form_class.base_fields if name not in ("secret", "events")}
    initial["events"] = post.getlist("events")
    tried = None
    if "example" in post:
        examples = dict(enumerate(FILTER_EXAMPLES))
        chosen = examples.get(int(post["example"]) if post["example"].isdigit() else -1)
        if chosen is not None:
            initial["filter"] = filter_text(chosen[1])
    else:
        event_type = post.get("try_event") or "threat.detected"
        if not catalogue.is_known(event_type):
            event_type = "threat.detected"
        sample = catalogue.EVENT_TYPES[event_type].sample
        tried = {"event": event_type, "sample": pretty(sample)}
        try:
            chosen_filter = parse_filter(post.get("filter", ""))
        except ValidationError as exc:
            tried["error"] = " ".join(exc.messages)
        else:
            tried["matches"] = filter_matches_event(
                request.organization, filter=chosen_filter, event_type=event_type, data=dict(sample)
            )
    return _form_page(request, form_class(initial=initial), webhook, tried)


@member_required
@require_http_methods(["GET", "POST"])
def webhook_create(request: HttpRequest) -> HttpResponse:
    if request.method == "POST" and (tool := _filter_tool(request, WebhookCreateForm)):
        return tool
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
                filter=data["filter"],
            )
        except Conflict as exc:
            form.add_error(None, exc.message)
        else:
            reveal.hand_over(
                request, kind=SECRET_REVEAL, object_id=created.webhook.id, secret=created.secret, rotated=False
            )
            messages.success(request, "Webhook created.")
            return redirect("dashboard:webhook-detail", webhook_id=created.webhook.id)
    return _form_page(request, form)


@member_required
@require_http_methods(["GET", "POST"])
def webhook_edit(request: HttpRequest, webhook_id: str) -> HttpResponse:
    webhook = webhook_get(request.organization, webhook_id)
    if request.method == "POST" and (tool := _filter_tool(request, WebhookEditForm, webhook)):
        return tool
    if request.method == "POST":
        form = WebhookEditForm(data=request.POST)
        if form.is_valid():
            webhook_services.webhook_update(webhook=webhook, changes=form.changes())
            messages.success(request, "Webhook saved.")
            return redirect("dashboard:webhook-detail", webhook_id=webhook.id)
    else:
        form = WebhookEditForm(
            initial={
                "url": webhook.url,
                "events": webhook.events,
                "enabled": webhook.enabled,
                "description": webhook.description,
                "filter": filter_text(webhook.filter),
            }
        )
    return _form_page(request, form, webhook)


@member_required
@require_GET
def webhook_detail(request: HttpRequest, webhook_id: str) -> HttpResponse:
    webhook = webhook_get(request.organization, webhook_id)
    filters = DeliveryFilterForm(data=request.GET)
    filters.is_valid()  # an invalid filter is shown as such and ignored
    wanted = filters.cleaned_data
    history = history_page(webhook, wanted)
    context = {
        "webhook": webhook,
        "secret": reveal.take(request, kind=SECRET_REVEAL, object_id=webhook.id),
        "filter_text": filter_text(webhook.filter),
        "previous_secret_until": webhook.previous_secret_until(),
        "overlap": duration_text(settings.WEBHOOK_SECRET_OVERLAP),
        "day": window_stats(webhook, DAY),
        "week": window_stats(webhook, WEEK),
        "charts": [
            charts.chart(
                "Deliveries per hour",
                selectors.delivery_series(webhook, window=DAY, buckets=charts.DAY_BUCKETS),
                unit="h",
                label_every=charts.DAY_LABEL_EVERY,
            ),
            charts.chart(
                "Deliveries per 6 hours",
                selectors.delivery_series(webhook, window=WEEK, buckets=charts.WEEK_BUCKETS),
                unit="d",
                label_every=charts.WEEK_LABEL_EVERY,
            ),
        ],
        "filters": filters,
        "history": history,
        "test_form": SendTestEventForm(auto_id="test-%s"),
    }
    return render_page(request, "dashboard/webhook_detail.html", context)


@member_required
@require_POST
def webhook_send_test(request: HttpRequest, webhook_id: str) -> HttpResponse:
    webhook = webhook_get(request.organization, webhook_id)
    form = SendTestEventForm(data=request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a known event type to send.")
        return redirect("dashboard:webhook-detail", webhook_id=webhook.id)
    try:
        delivery = services.delivery_send_test(webhook=webhook, event_type=form.cleaned_data["event"])
    except Conflict as exc:
        messages.error(request, exc.message)
    else:
        skipped = (
            ""
            if payload_matches(webhook.filter, delivery.event.payload)
            else " (sent as a test; the filter would skip it)"
        )
        messages.success(request, f"Test event {delivery.event_type} queued as delivery {delivery.id}{skipped}.")
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
    form = RotateSecretForm(data=request.POST)
    if not form.is_valid():
        messages.error(request, "Choose whether the old secret keeps signing for a while or stops now.")
        return redirect("dashboard:webhook-detail", webhook_id=webhook.id)
    secret = webhook_services.webhook_rotate_secret(webhook=webhook, expire_previous_in=form.expire_previous_in())
    reveal.hand_over(request, kind=SECRET_REVEAL, object_id=webhook.id, secret=secret, rotated=True)
    return redirect("dashboard:webhook-detail", webhook_id=webhook.id)


@member_required
@require_POST
def webhook_expire_previous_secret(request: HttpRequest, webhook_id: str) -> HttpResponse:
    webhook = webhook_get(request.organization, webhook_id)
    webhook_services.webhook_expire_previous_secret(webhook=webhook)
    messages.success(request, "The old secret no longer signs: the new one signs every delivery from now on.")
    return redirect("dashboard:webhook-detail", webhook_id=webhook.id)


@member_required
@require_http_methods(["GET", "POST"])
def webhook_delete(request: HttpRequest, webhook_id: str) -> HttpResponse:
    webhook = webhook_get(request.organization, webhook_id)
    if request.method == "POST":
        webhook_services.webhook_delete(webhook=webhook)
        messages.success(request, f"Webhook {webhook.url} deleted.")
        return redirect("dashboard:webhook-list")
    return render_page(request, "dashboard/webhook_delete.html", {"webhook": webhook})


# --- Deliveries --------------------------------------------------------------------------


@member_required
@require_GET
def delivery_detail(request: HttpRequest, webhook_id: str, delivery_id: str) -> HttpResponse:
    webhook = webhook_get(request.organization, webhook_id)
    delivery = selectors.delivery_get(webhook, delivery_id)
    attempts = selectors.attempts_of(delivery)
    context = {
        "webhook": webhook,
        "delivery": delivery,
        "payload": payload_preview(delivery.event.payload, limit=settings.WEBHOOK_PAYLOAD_PREVIEW_BYTES),
        "preview_limit": settings.WEBHOOK_PAYLOAD_PREVIEW_BYTES,
        "attempts": attempts,
        # "Last response" is the last attempt's, never a reason the delivery was not attempted.
        "last_attempt": attempts[-1] if attempts else None,
    }
    return render_page(request, "dashboard/delivery_detail.html", context)


@member_required
@require_GET
def delivery_payload(request: HttpRequest, webhook_id: str, delivery_id: str) -> HttpResponse:
    """The exact body the delivery sent, for the member's browser (the API's route wants a key)."""
    webhook = webhook_get(request.organization, webhook_id)
    return payload_response(selectors.delivery_get(webhook, delivery_id))


@member_required
@require_POST
def delivery_retry(request: HttpRequest, webhook_id: str, delivery_id: str) -> HttpResponse:
    webhook = webhook_get(request.organization, webhook_id)
    delivery = selectors.delivery_get(webhook, delivery_id)
    try:
        services.delivery_retry(delivery=delivery)
    except Conflict as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "Retry queued: a new attempt will appear below.")
    return redirect("dashboard:delivery-detail", webhook_id=webhook.id, delivery_id=delivery.id)
