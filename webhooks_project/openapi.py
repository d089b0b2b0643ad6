"""OpenAPI schema details drf-spectacular cannot infer: the bearer scheme and the error bodies.

Settings point ``DEFAULT_SCHEMA_CLASS`` here, so importing this module for schema generation
also registers the authentication extension.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular import openapi
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import get_doc
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers

from events import catalogue
from events.schemas import data_schema
from webhooks_project.errors import _CODES
from webhooks_project.serializers import StrictSerializer


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "webhooks.authentication.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "API key",
            "description": "An organization's API key: `Authorization: Bearer cck_…`.",
        }


class ErrorSerializer(serializers.Serializer):
    """Every 4xx body (webhooks_project.errors)."""

    error = serializers.ChoiceField(choices=sorted(set(_CODES.values())), help_text="A stable error code.")
    message = serializers.CharField(help_text="What was wrong, for a person.")
    fields = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text='Errors by field ("events[0]", "body"): with a 400, and with a 404 for an id sent in the body.',
    )

    class Meta:
        ref_name = "Error"


_BODY_METHODS = {"POST", "PUT", "PATCH"}


class AutoSchema(openapi.AutoSchema):
    """Adds the error responses every operation can give to what each view declares."""

    def _get_response_bodies(self, direction: openapi.Direction = "response") -> dict:
        responses = super()._get_response_bodies(direction)
        errors: dict[str, str] = {}
        if self.method in _BODY_METHODS or any(p["in"] != "path" for p in self._get_parameters()):
            errors["400"] = "The request is invalid; `fields` names what was wrong."
        if self.get_auth():
            errors["401"] = "Missing, malformed, unknown or revoked API key."
        if "{" in self.path:
            errors["404"] = "No such object in the caller's organization."
        if self.method in _BODY_METHODS:
            errors["413"] = "The request body exceeds WEBHOOK_MAX_PAYLOAD_BYTES."
            errors["415"] = "The body is not application/json."
        if self.get_auth():
            errors["429"] = "Too many requests (or events) from this API key; `Retry-After` says when to retry."
        for code, description in errors.items():
            if code not in responses:
                responses[code] = self._get_response_for_code(
                    OpenApiResponse(ErrorSerializer, description=description), code, direction=direction
                )
        return dict(sorted(responses.items()))

    def _get_response_headers_for_code(self, status_code: str, direction: openapi.Direction = "response") -> dict:
        headers = super()._get_response_headers_for_code(status_code, direction)
        if str(status_code) == "429":
            headers["Retry-After"] = {
                "schema": {"type": "integer", "minimum": 0},
                "description": "Seconds to wait before sending again.",
            }
        return headers

    def _map_basic_serializer(self, serializer, direction: openapi.Direction) -> dict:
        schema = super()._map_basic_serializer(serializer, direction)
        if isinstance(serializer, StrictSerializer):
            # Unknown fields are refused with a 400, so the schema says none are allowed.
            schema["additionalProperties"] = False
            if schema.get("description") == get_doc(StrictSerializer):
                del schema["description"]  # inherited, it describes the base class only
        return schema


def document_event_types(result: dict, generator: Any, request: Any, public: bool) -> dict:
    """Post-processing hook: event type fields accept the catalogue's names only, and an
    event's data is described by its type's JSON Schema (``events.schemas``).

    The serializers keep plain string fields so that an unknown name gets the service's
    message listing the valid ones; the schema still tells clients (and generators) the set.
    ``POST /ui/api/events`` takes one of the types' bodies, told apart by ``event``.
    """
    names = catalogue.names()
    schemas = result.get("components", {}).get("schemas", {})
    for component in ("WebhookWrite", "WebhookUpdate", "PatchedWebhookUpdate"):
        events = schemas.get(component, {}).get("properties", {}).get("events")
        if events and "items" in events:
            events["items"]["enum"] = [*names, catalogue.ALL_EVENTS]
            events["minItems"] = 1
    test_event = schemas.get("TestEvent", {}).get("properties", {}).get("event")
    if test_event:
        test_event["enum"] = names
    if "Emit" in schemas:
        schemas.update(_emit_bodies(names))
    if "EmitBatch" in schemas:
        schemas.update(_batch_items(names))
        schemas["EmitBatch"]["properties"]["events"] = {
            "type": "array",
            "items": {"$ref": "#/components/schemas/EmitBatchItem"},
            "minItems": 1,
            "maxItems": settings.WEBHOOK_BATCH_MAX_EVENTS,
            "description": "The events, stored all or none; `ids` answers them in this order.",
        }
    return result


def _stem(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("."))


def _emit_bodies(names: list[str]) -> dict[str, dict]:
    """``Emit`` as one body per event type (``event`` the discriminator), and each type's data
    schema as a component of its own (``ThreatDetectedData``)."""
    components = {f"{_stem(name)}Data": data_schema(name) for name in names}
    components |= _one_body_per_type(
        names, "Emit", "An event: its type, and data matching that type's schema.", extra_properties={}
    )
    return components


def _batch_items(names: list[str]) -> dict[str, dict]:
    """``EmitBatchItem``: an ``Emit`` body of any type and, optionally, its idempotency key
    (the types' data components are ``_emit_bodies``')."""
    from events.models import Event  # at schema generation, when the apps are ready

    idempotency_key = {
        "type": "string",
        "minLength": 1,
        "maxLength": Event._meta.get_field("idempotency_key").max_length,
        "description": "A repeat within WEBHOOK_IDEMPOTENCY_WINDOW (or earlier in the batch)"
        " answers the original event's id and stores nothing new.",
    }
    return _one_body_per_type(
        names,
        "EmitBatchItem",
        "One event of a batch: its type, data matching that type's schema, and an optional key.",
        extra_properties={"idempotency_key": idempotency_key},
    )


def _one_body_per_type(names: list[str], component: str, description: str, *, extra_properties: dict) -> dict:
    """``component`` as one of a body per event type (``{component}ThreatDetected``: ``event``
    that type, ``data`` its data component, and ``extra_properties``), ``event`` the discriminator."""
    components: dict[str, dict] = {}
    mapping: dict[str, str] = {}
    for name in names:
        stem = _stem(name)
        components[f"{component}{stem}"] = {
            "type": "object",
            "properties": {
                "event": {"type": "string", "enum": [name]},
                "data": {"$ref": f"#/components/schemas/{stem}Data"},
                **extra_properties,
            },
            "required": ["event", "data"],
            "additionalProperties": False,
        }
        mapping[name] = f"#/components/schemas/{component}{stem}"
    components[component] = {
        "description": description,
        "oneOf": [{"$ref": ref} for ref in mapping.values()],
        "discriminator": {"propertyName": "event", "mapping": mapping},
    }
    return components
