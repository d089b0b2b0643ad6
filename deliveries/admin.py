"""Operators' admin for webhooks (with their delivery health) and deliveries.

The Webhook admin is registered here rather than in ``webhooks/admin.py`` because its list
shows delivery statistics and its actions send test events: ``deliveries`` joins the two apps.
No page ever renders a signing secret.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.template.defaultfilters import filesizeformat
from django.urls import URLPattern, path, reverse
from django.utils.dateformat import format as date_format
from django.utils.html import format_html
from django.utils.http import urlencode

from deliveries import rates, selectors, services
from deliveries.api import payload_response
from deliveries.models import Attempt, Delivery
from events import catalogue
from events.admin import LargeTablePaginator
from events.preview import payload_preview
from webhooks import filters
from webhooks import services as webhook_services
from webhooks.models import Webhook
from webhooks_project.exceptions import Conflict

# The window of the webhook list's health columns.
HEALTH_WINDOW = timedelta(hours=24)
# Times in the delivery list, to the second (UTC, the service's time zone).
SHORT_TIME_FORMAT = "M j, H:i:s"
# Characters of a stored response body shown in the attempt table (the detail keeps all).
RESPONSE_PREVIEW_CHARS = 200


def short_time(moment: datetime | None) -> str:
    """``Dec 2, 14:05:09`` (the admin's default, ``Dec. 2, 2026, 2:05 p.m.``, is twice as wide)."""
    return "—" if moment is None else date_format(moment, SHORT_TIME_FORMAT)


class IdFilter(admin.SimpleListFilter):
    """A text box that filters on an exact id: a list of every webhook would not scale."""

    template = "admin/deliveries/id_filter.html"
    lookup: str = ""
    placeholder: str = ""

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        # One placeholder choice, so the filter is shown; the template draws a text box.
        return [("", "")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = (self.value() or "").strip()
        return queryset.filter(**{self.lookup: value}) if value else queryset

    def choices(self, changelist: Any):
        keep = [(name, value) for name, value in changelist.params.items() if name != self.parameter_name]
        yield {
            "parameter_name": self.parameter_name,
            "value": self.value(),
            "placeholder": self.placeholder,
            "keep": keep,
            "query_string": changelist.get_query_string(remove=[self.parameter_name]),
        }


class OrganizationIdFilter(IdFilter):
    title = "organization id"
    parameter_name = "organization"
    lookup = "organization_id"
    placeholder = "org_…"


class WebhookIdFilter(IdFilter):
    title = "webhook id"
    parameter_name = "webhook"
    lookup = "webhook_id"
    placeholder = "whk_…"


class EventTypeFilter(admin.SimpleListFilter):
    """The catalogue's types (a DISTINCT over all deliveries would scan the table)."""

    title = "event type"
    parameter_name = "event_type"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [(name, name) for name in catalogue.names()]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        return queryset.filter(event_type=self.value()) if self.value() else queryset


# --- Webhooks ----------------------------------------------------------------------------


class WebhookChangeList(ChangeList):
    """The webhook list, each row's health (its health columns) read for the whole page at once."""

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        health = selectors.webhooks_health(list(self.result_list), window=HEALTH_WINDOW)
        for webhook in self.result_list:  # the instances the page renders: list() filled its cache
            webhook.health = health[webhook.id]


class WebhookAdminForm(forms.ModelForm):
    """The filter as the API takes it: validated, its errors naming the path and the operator."""

    class Meta:
        model = Webhook
        fields = ["description", "enabled", "filter"]

    def clean_filter(self) -> dict[str, Any] | None:
        value = self.cleaned_data.get("filter")
        if value is None:
            return None
        try:
            return filters.validate_filter(value)
        except filters.FilterError as exc:
            raise forms.ValidationError(str(exc)) from exc


@admin.register(Webhook)
class WebhookAdmin(admin.ModelAdmin):
    form = WebhookAdminForm
    list_display = [
        "id",
        "url",
        "event_list",
        "organization",
        "enabled",
        "success_rate_24h",
        "last_delivery_status",
        "deliveries_link",
    ]
    list_filter = ["enabled", OrganizationIdFilter]
    list_select_related = ["organization"]
    search_fields = ["=id", "url"]
    list_per_page = 50
    actions = ["enable", "disable", "send_test_event", "rotate_secret"]
    # Secrets are not in the form (not editable) and not listed here: never shown.
    fields = [
        "id",
        "organization",
        "url",
        "events",
        "filter",
        "filter_path",
        "description",
        "enabled",
        "disabled_reason",
        "created_at",
        "updated_at",
    ]
    readonly_fields = [
        "id",
        "organization",
        "url",
        "events",
        "filter_path",
        "disabled_reason",
        "created_at",
        "updated_at",
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Webhooks are created by their organization through the API, which returns the secret.
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Webhook | None = None) -> bool:
        # Disable instead: its delete page would list every delivery. Organizations delete theirs via the API.
        return False

    def save_model(self, request: HttpRequest, obj: Webhook, form, change: bool) -> None:
        changes = {name: form.cleaned_data[name] for name in form.changed_data}
        # The form has already put its values on ``obj``: the service compares with the stored row.
        stored = Webhook.objects.get(pk=obj.pk)
        webhook_services.webhook_update(
            webhook=stored, changes=changes, disabled_reason=Webhook.DisabledReason.OPERATOR
        )

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return WebhookChangeList

    class Media:
        css = {"all": ["admin/deliveries/rates.css"]}  # the rates' colours, as the dashboard's

    @admin.display(description="events")
    def event_list(self, webhook: Webhook) -> str:
        return ", ".join(webhook.events) + (" (filtered)" if webhook.filter is not None else "")

    @admin.display(description="success rate (24 h)")
    def success_rate_24h(self, webhook: Webhook) -> str:
        counted = webhook.health.rates  # type: ignore[attr-defined]
        text = rates.percent(counted.success_rate(rates.PERCENT_PLACES))
        if counted.grade is None:
            return text
        return format_html('<span class="rate-{}" title="{}">{}</span>', counted.grade, counted.grade.label, text)

    @admin.display(description="last delivery")
    def last_delivery_status(self, webhook: Webhook) -> str:
        return webhook.health.last_status or "—"  # type: ignore[attr-defined]

    @admin.display(description="deliveries")
    def deliveries_link(self, webhook: Webhook) -> str:
        url = reverse("admin:deliveries_delivery_changelist") + "?" + urlencode({"webhook": webhook.id})
        return format_html('<a href="{}">history</a>', url)

    @admin.action(description="Enable selected webhooks", permissions=["change"])
    def enable(self, request: HttpRequest, queryset: QuerySet[Webhook]) -> None:
        webhooks = list(queryset.filter(enabled=False))
        for webhook in webhooks:
            webhook_services.webhook_update(webhook=webhook, changes={"enabled": True})
        self.message_user(request, f"Enabled {len(webhooks)} webhook(s).", messages.SUCCESS)

    @admin.action(description="Disable selected webhooks", permissions=["change"])
    def disable(self, request: HttpRequest, queryset: QuerySet[Webhook]) -> None:
        webhook_ids = list(queryset.filter(enabled=True).values_list("id", flat=True))
        disabled = webhook_services.webhooks_disable(webhook_ids=webhook_ids, reason=Webhook.DisabledReason.OPERATOR)
        self.message_user(request, f"Disabled {len(disabled)} webhook(s).", messages.SUCCESS)

    @admin.action(description="Send a test event (test.ping)", permissions=["change"])
    def send_test_event(self, request: HttpRequest, queryset: QuerySet[Webhook]) -> None:
        sent = []
        for webhook in queryset:
            try:
                sent.append(services.delivery_send_test(webhook=webhook, event_type="test.ping").id)
            except Conflict as exc:  # disabled: the service's message says what to do
                self.message_user(request, exc.message, messages.WARNING)
        if sent:
            self.message_user(request, f"Test event queued: delivery {', '.join(sent)}.", messages.SUCCESS)

    @admin.action(description="Rotate signing secret", permissions=["change"])
    def rotate_secret(self, request: HttpRequest, queryset: QuerySet[Webhook]) -> None:
        webhooks = list(queryset)
        for webhook in webhooks:
            webhook_services.webhook_rotate_secret(webhook=webhook)
        hours = settings.WEBHOOK_SECRET_OVERLAP / 3600
        self.message_user(
            request,
            f"Rotated the signing secret of {len(webhooks)} webhook(s). The new secret is not shown anywhere; for "
            f"{hours:g} h the previous one keeps signing X-CyberCage-Signature (and webhook-signature beside the new "
            "one), so receivers keep verifying. The organization gets a secret it can read by rotating again through "
            "the API (POST /ui/api/webhooks/{id}/rotate-secret) or the dashboard.",
            messages.SUCCESS,
        )


# --- Deliveries --------------------------------------------------------------------------


class AttemptInline(admin.TabularInline):
    model = Attempt
    extra = 0
    can_delete = False
    fields = ["number", "requested_at", "response_status", "duration_ms", "error", "response_preview"]
    readonly_fields = fields
    ordering = ["number"]

    def has_add_permission(self, request: HttpRequest, obj: Delivery | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Delivery | None = None) -> bool:
        return False

    @admin.display(description="response body")
    def response_preview(self, attempt: Attempt) -> str:
        body = attempt.response_body
        preview = body if len(body) <= RESPONSE_PREVIEW_CHARS else body[:RESPONSE_PREVIEW_CHARS] + "…"
        if attempt.response_body_replaced:
            return f"{preview} (not UTF-8 text: undecodable bytes shown as �)"
        return preview


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    # Fits a 1,280 px window without scrolling sideways: the webhook's id under the delivery's,
    # the organization one click away (the filter, the webhook), short times and headers, and
    # the page's width for the list (no app sidebar).
    list_display = ["delivery", "event_type", "status", "attempts", "http_status", "created", "next_attempt"]
    # The first column draws its own two links (the delivery, its webhook's deliveries).
    list_display_links = None
    list_filter = ["status", EventTypeFilter, WebhookIdFilter, OrganizationIdFilter]
    search_fields = ["=id", "=event__id"]
    search_help_text = "Exact delivery id or event id."
    # Ids are time-ordered: newest first is a primary-key index scan.
    ordering = ["-id"]
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    paginator = LargeTablePaginator
    inlines = [AttemptInline]
    actions = ["retry_now"]
    fields = [
        "id",
        "organization",
        "webhook",
        "event",
        "event_type",
        "status",
        "attempts",
        "response_status",
        "last_error",
        "created_at",
        "last_attempt_at",
        "next_attempt_at",
        "lease_until",
        "pretty_payload",
    ]
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Delivery | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Delivery | None = None) -> bool:
        # History is removed by retention (WEBHOOK_RETENTION_DAYS drops whole days), not by hand.
        return False

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        # Without the app sidebar (the breadcrumbs lead back): its 300 px are the list's.
        return super().changelist_view(request, {**(extra_context or {}), "is_nav_sidebar_enabled": False})

    @admin.display(description="delivery · webhook", ordering="id")
    def delivery(self, delivery: Delivery) -> str:
        page = reverse("admin:deliveries_delivery_change", args=[delivery.id])
        others = reverse("admin:deliveries_delivery_changelist") + "?" + urlencode({"webhook": delivery.webhook_id})
        return format_html(
            '<a href="{}">{}</a><div class="quiet" title="The webhook: its deliveries">{}</div>',
            page,
            delivery.id,
            format_html('<a href="{}">{}</a>', others, delivery.webhook_id),
        )

    @admin.display(description="HTTP", ordering="response_status")
    def http_status(self, delivery: Delivery) -> str:
        return "—" if delivery.response_status is None else str(delivery.response_status)

    @admin.display(description="created (UTC)", ordering="created_at")
    def created(self, delivery: Delivery) -> str:
        return short_time(delivery.created_at)

    @admin.display(description="next try (UTC)", ordering="next_attempt_at")
    def next_attempt(self, delivery: Delivery) -> str:
        return short_time(delivery.next_attempt_at)

    def has_retry_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("deliveries.change_delivery")

    @admin.display(description="payload")
    def pretty_payload(self, delivery: Delivery) -> str:
        preview = payload_preview(delivery.event.payload, limit=settings.WEBHOOK_PAYLOAD_PREVIEW_BYTES)
        exact = reverse("admin:deliveries_delivery_payload", args=[delivery.id])
        link = format_html('<a href="{}">The exact body sent</a> ({})', exact, filesizeformat(preview.size))
        if not preview.truncated:
            return format_html("<p>{}</p><pre>{}</pre>", link, preview.text)
        return format_html("<p>Only the beginning is shown. {}</p><pre>{}\n…</pre>", link, preview.text)

    def get_urls(self) -> list[URLPattern]:
        payload = self.admin_site.admin_view(self.payload_view)
        return [path("<str:delivery_id>/payload/", payload, name="deliveries_delivery_payload"), *super().get_urls()]

    def payload_view(self, request: HttpRequest, delivery_id: str) -> HttpResponse:
        """The body a delivery sent, byte for byte (as the API's and the dashboard's payload routes)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        delivery = get_object_or_404(Delivery.objects.select_related("event"), id=delivery_id)
        return payload_response(delivery)

    @admin.action(description="Retry now", permissions=["retry"])
    def retry_now(self, request: HttpRequest, queryset: QuerySet[Delivery]) -> None:
        retried = 0
        refused: dict[str, list[str]] = {}  # the service's message (one per webhook) -> deliveries
        for delivery in queryset:
            try:
                services.delivery_retry(delivery=delivery)
                retried += 1
            except Conflict as exc:
                refused.setdefault(exc.message, []).append(delivery.id)
        self.message_user(request, f"Retrying {retried} delivery(ies) now.", messages.SUCCESS)
        for message, delivery_ids in refused.items():
            self.message_user(request, f"Not retried: {', '.join(delivery_ids)}. {message}", messages.WARNING)
