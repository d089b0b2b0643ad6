"""Operators' admin for organizations and API keys.

The Webhook admin lives in ``deliveries/admin.py``: its list shows delivery health and its
actions send test events, and ``webhooks`` never imports ``deliveries``.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin.options import IS_POPUP_VAR
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse

from webhooks import reveal, services
from webhooks.models import ApiKey, Organization

# What an API key's admin page reveals once, handed over when the key is added (webhooks.reveal).
API_KEY_REVEAL = "api-key"


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ["name", "id", "created_at"]
    search_fields = ["name", "=id"]
    readonly_fields = ["id", "created_at"]

    def has_delete_permission(self, request: HttpRequest, obj: Organization | None = None) -> bool:
        # The admin's delete page lists every related row (events, deliveries, attempts): unusable at scale.
        return False


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Keys are generated here, never typed; the key itself is shown once, on its page right after."""

    list_display = ["prefix", "name", "organization", "created_at", "last_used_at", "revoked"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter)]
    list_select_related = ["organization"]
    search_fields = ["=prefix", "name", "=organization__id"]
    raw_id_fields = ["organization"]
    actions = ["revoke"]

    def get_fields(self, request: HttpRequest, obj: ApiKey | None = None) -> list[str]:
        if obj is None:
            return ["organization", "name"]
        return ["prefix", "name", "organization", "created_at", "last_used_at", "revoked_at"]

    def get_readonly_fields(self, request: HttpRequest, obj: ApiKey | None = None) -> list[str]:
        if obj is None:
            return []
        # Revoking goes through the action; a key never moves to another organization.
        return ["prefix", "organization", "created_at", "last_used_at", "revoked_at"]

    @admin.display(boolean=True, description="revoked", ordering="revoked_at")
    def revoked(self, api_key: ApiKey) -> bool:
        return api_key.revoked_at is not None

    def save_model(self, request: HttpRequest, obj: ApiKey, form, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        created, key = services.api_key_create(organization=obj.organization, name=obj.name)
        # The admin goes on with ``obj`` (change log, redirect): make it the saved row.
        for field in ("id", "prefix", "key_hash", "created_at"):
            setattr(obj, field, getattr(created, field))
        obj._state.adding = False
        obj._state.db = created._state.db
        # Shown on the key's page next, from the session; a message would carry it in a cookie.
        reveal.hand_over(request, kind=API_KEY_REVEAL, object_id=obj.id, secret=key)

    def response_add(self, request: HttpRequest, obj: ApiKey, post_url_continue: str | None = None) -> HttpResponse:
        response = super().response_add(request, obj, post_url_continue)
        if IS_POPUP_VAR in request.POST:
            return response
        return HttpResponseRedirect(reverse("admin:webhooks_apikey_change", args=[obj.pk]))

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict | None = None
    ) -> HttpResponse:
        revealed = reveal.take(request, kind=API_KEY_REVEAL, object_id=object_id)
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), "revealed_key": revealed})

    @admin.action(description="Revoke selected API keys")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        active = list(queryset.filter(revoked_at__isnull=True))
        for api_key in active:
            services.api_key_revoke(api_key=api_key)
        self.message_user(request, f"Revoked {len(active)} API key(s).", messages.SUCCESS)
