"""Bearer API keys for ``/ui/api/``: looked up by prefix, compared in constant time."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from django.utils import timezone
from rest_framework import authentication, exceptions

from webhooks.models import ApiKey, Organization
from webhooks.services import API_KEY_LOOKUP_CHARS, API_KEY_PREFIX, hash_api_key
from webhooks_project.exceptions import SEND_API_KEY


@dataclass(frozen=True)
class ApiPrincipal:
    """The caller: an organization, through one of its keys. ``request.user`` in the API."""

    organization: Organization
    api_key_id: str
    is_authenticated: bool = True


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        scheme, _, key = header.partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            raise exceptions.AuthenticationFailed(SEND_API_KEY)
        prefix_length = len(API_KEY_PREFIX) + API_KEY_LOOKUP_CHARS
        api_key = (
            ApiKey.objects.select_related("organization")
            .filter(prefix=key[:prefix_length], revoked_at__isnull=True)
            .first()
        )
        if api_key is None or not hmac.compare_digest(api_key.key_hash, hash_api_key(key)):
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.")
        if api_key.last_used_at is None or (timezone.now() - api_key.last_used_at).total_seconds() > 60:
            ApiKey.objects.filter(id=api_key.id).update(last_used_at=timezone.now())
        return ApiPrincipal(organization=api_key.organization, api_key_id=api_key.id), api_key

    def authenticate_header(self, request) -> str:
        return self.keyword
