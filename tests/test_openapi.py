"""The OpenAPI document is served, documents the bearer scheme and error bodies, and is true:
schemathesis generates requests from it and checks every response against it."""

from __future__ import annotations

import pytest
import schemathesis
from conftest import make_webhook
from hypothesis import HealthCheck, settings
from schemathesis.checks import load_all_checks, not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

load_all_checks()

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# Bounded and repeatable: a fixed number of examples per operation, derandomized.
MAX_EXAMPLES = 10


def test_schema_when_fetched_documents_bearer_auth_and_errors(client):
    response = client.get("/ui/api/schema", HTTP_ACCEPT="application/json")

    assert response.status_code == 200
    schema = response.json()
    assert schema["components"]["securitySchemes"]["ApiKey"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "API key",
        "description": "An organization's API key: `Authorization: Bearer cck_…`.",
    }
    error = schema["components"]["schemas"]["Error"]
    assert set(error["required"]) == {"error", "message"}
    create = schema["paths"]["/ui/api/webhooks"]["post"]
    assert create["security"] == [{"ApiKey": []}]
    assert set(create["responses"]) == {"201", "400", "401", "409", "413", "415", "429"}
    assert create["responses"]["400"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
    components = schema["components"]["schemas"]
    assert "threat.detected" in components["Emit"]["discriminator"]["mapping"]
    assert "threat.detected" in components["TestEvent"]["properties"]["event"]["enum"]
    assert "*" in components["WebhookWrite"]["properties"]["events"]["items"]["enum"]
    assert components["WebhookWrite"]["additionalProperties"] is False
    detail = schema["paths"]["/ui/api/webhooks/{webhook_id}"]
    assert set(detail["delete"]["responses"]) == {"204", "401", "404", "429"}
    assert "202" in schema["paths"]["/ui/api/events"]["post"]["responses"]
    batch = schema["paths"]["/ui/api/events/batch"]["post"]
    assert set(batch["responses"]) == {"202", "400", "401", "413", "415", "429"}
    assert batch["responses"]["202"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/EventsAccepted"
    }
    events = components["EmitBatch"]["properties"]["events"]
    assert (events["minItems"], events["maxItems"]) == (1, 100)
    assert events["items"] == {"$ref": "#/components/schemas/EmitBatchItem"}
    item = components["EmitBatchItem"]["discriminator"]["mapping"]["threat.detected"].rsplit("/", 1)[1]
    assert set(components[item]["properties"]) == {"event", "data", "idempotency_key"}
    assert components[item]["properties"]["data"] == {"$ref": "#/components/schemas/ThreatDetectedData"}
    assert "202" in schema["paths"]["/ui/api/webhooks/test"]["post"]["responses"]
    assert "404" in schema["paths"]["/ui/api/webhooks/test"]["post"]["responses"]
    assert "202" in schema["paths"]["/ui/api/webhooks/{webhook_id}/recover"]["post"]["responses"]
    assert "202" in schema["paths"]["/ui/api/webhooks/{webhook_id}/deliveries/{delivery_id}/retry"]["post"]["responses"]


def test_docs_when_opened_load_swagger_ui_from_this_server(client):
    page = client.get("/ui/api/docs")

    assert page.status_code == 200
    html = page.content.decode()
    assert "swagger-ui" in html
    assert "cdn." not in html  # works without internet
    assert "unpkg" not in html
    bundle = next(part.split('"')[0] for part in html.split('src="')[1:] if "swagger-ui-bundle" in part)
    asset = client.get(bundle)
    assert asset.status_code == 200


# --- schemathesis ------------------------------------------------------------------------


@pytest.fixture
def in_process_wsgi():
    """Let the raw WSGI app share the test's database connection and transaction, as Django's
    test client does: no closing of connections around each request."""
    from django.core import signals
    from django.db import close_old_connections

    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def targets(tenant, in_process_wsgi) -> dict:
    """Objects that exist, for the generated requests to aim at."""
    from deliveries.services import delivery_send_test

    webhook = make_webhook(tenant.organization, "https://example.com/hook").webhook
    delivery = delivery_send_test(webhook=webhook, event_type="test.ping")
    return {"webhook": webhook, "delivery": delivery, "organization": tenant.organization}


def _load_schema():
    from webhooks_project.wsgi import application

    config = schemathesis.Config.from_dict(
        {
            # The bearer key is made per test (below); generated ones would only meet 401.
            "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "with-security-parameters": False},
            "phases": {"stateful": {"enabled": False}},
        }
    )
    # The schema view needs no database, so it can be read while tests are collected.
    return schemathesis.openapi.from_wsgi("/ui/api/schema", application, config=config)


schema = _load_schema()


@schema.parametrize()
# The database objects are meant to be shared by every generated request of an operation.
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_api_when_fuzzed_conforms_to_its_schema(case, tenant, targets):
    # Aim most requests at objects that exist, so success responses are checked too (random
    # ids would only ever meet 404). DELETE gets a fresh webhook each time.
    webhook = targets["webhook"]
    if case.method == "DELETE":
        webhook = make_webhook(targets["organization"], "https://example.com/other").webhook
    if case.path_parameters and "webhook_id" in case.path_parameters:
        case.path_parameters["webhook_id"] = webhook.id
    if case.path_parameters and "delivery_id" in case.path_parameters:
        case.path_parameters["delivery_id"] = targets["delivery"].id
    if case.path.endswith("/webhooks/test") and isinstance(case.body, dict) and "webhook_id" in case.body:
        case.body["webhook_id"] = webhook.id
    if isinstance(case.body, dict) and isinstance(case.body.get("url"), str) and len(case.body["url"]) <= 2048:
        # Random strings are never reachable destinations; loopback is allowed in tests.
        case.body["url"] = "http://127.0.0.1:9/hook"
    case.call_and_validate(headers={"Authorization": f"Bearer {tenant.key}"}, checks=CHECKS)
