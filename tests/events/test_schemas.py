"""Event data checked against each type's JSON Schema, built from the catalogue: the schemas
themselves, the messages, and every door in (emit(), POST /ui/api/events, emit_event)."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest
from conftest import DOCUMENT_EXAMPLES, ROOT
from django.core.management import CommandError, call_command
from jsonschema import Draft202012Validator

from events import catalogue, emit
from events.models import Event
from events.schemas import DIALECT, data_errors, data_schema
from events.services import EmitError

REQUIRED = "This field is required."


@pytest.mark.parametrize("event_type", catalogue.names())
def test_every_type_has_a_valid_schema_its_sample_matches(event_type):
    schema = data_schema(event_type)

    Draft202012Validator.check_schema({"$schema": DIALECT, **schema})
    assert schema["type"] == "object"
    assert "additionalProperties" not in schema  # extra fields are allowed
    assert data_errors(event_type, catalogue.EVENT_TYPES[event_type].sample) == {}


@pytest.mark.parametrize("event_type", DOCUMENT_EXAMPLES)
def test_the_documents_examples_match_their_schemas(event_type):
    assert data_errors(event_type, DOCUMENT_EXAMPLES[event_type]) == {}


def test_required_fields_are_the_ones_that_name_the_subject():
    required = {name: data_schema(name).get("required", []) for name in catalogue.names()}

    assert required == {
        "threat.detected": ["threat_id", "severity"],
        "threat.blocked": ["threat_id"],
        "server.approved": ["server_id", "name"],
        "server.blocked": ["server_id", "name"],
        "server.pending": ["server_id", "name"],
        "agent.online": ["agent_id"],
        "agent.offline": ["agent_id"],
        "policy.violation": ["policy"],
        "test.ping": [],
    }
    assert data_schema("policy.violation")["properties"]["policy"]["required"] == ["id"]
    assert data_schema("threat.detected")["properties"]["severity"]["enum"] == ["low", "medium", "high", "critical"]


@pytest.mark.parametrize(
    ("event_type", "data", "errors"),
    [
        ("server.blocked", {"note": "x"}, {"data.server_id": [REQUIRED], "data.name": [REQUIRED]}),
        (
            "threat.detected",
            {"threat_id": "thr_1", "severity": "urgent"},
            {"data.severity": ["'urgent' is not one of low, medium, high, critical"]},
        ),
        ("threat.detected", {"threat_id": 7, "severity": 3}, {
            "data.threat_id": ["Must be a string, not a number."],
            "data.severity": ["Must be a string, not a number."],
        }),
        ("threat.blocked", {"action": "x"}, {"data.threat_id": [REQUIRED]}),
        ("agent.offline", {"agent_id": None}, {"data.agent_id": ["Must be a string, not null."]}),
        ("policy.violation", {}, {"data.policy": [REQUIRED]}),
        ("policy.violation", {"policy": {"name": "x"}}, {"data.policy.id": [REQUIRED]}),
        ("policy.violation", {"policy": "pol_1"}, {"data.policy": ["Must be an object, not a string."]}),
        (
            "threat.detected",
            {"threat_id": "t", "severity": "low", "details": {"blocked": "yes"}, "agent": []},
            {
                "data.agent": ["Must be an object, not an array."],
                "data.details.blocked": ["Must be true or false, not a string."],
            },
        ),
        ("server.pending", {"server_id": "s", "name": "n", "config": {"args": "-x"}}, {
            "data.config.args": ["Must be an array, not a string."]
        }),
    ],
)  # fmt: skip
def test_data_errors_name_each_path_and_what_it_must_be(event_type, data, errors):
    assert data_errors(event_type, data) == errors
    # The reference implementation (Python's jsonschema) judges the data the same way.
    assert not Draft202012Validator(data_schema(event_type)).is_valid(data)


@pytest.mark.parametrize(
    ("event_type", "data"),
    [
        ("threat.detected", {"threat_id": "t", "severity": "critical", "score": 9.5, "tags": []}),
        ("agent.online", {"agent_id": "a", "device": {"kernel": "6.1"}}),
        ("threat.blocked", {"threat_id": "t", "blocked_at": "not a date: format is an annotation"}),
        ("test.ping", {}),
    ],
)
def test_data_may_leave_out_optional_fields_and_add_its_own(event_type, data):
    assert data_errors(event_type, data) == {}
    assert Draft202012Validator(data_schema(event_type)).is_valid(data)


def test_a_long_value_is_quoted_short_in_its_message():
    (message,) = data_errors("threat.detected", {"threat_id": "t", "severity": "x" * 1_000_000})["data.severity"]

    assert message.endswith("… is not one of low, medium, high, critical")
    assert len(message) < 120


@pytest.mark.django_db
def test_emit_refuses_data_that_breaks_the_schema_and_stores_nothing(tenant):
    with pytest.raises(EmitError) as refused:
        emit(tenant.organization, "server.blocked", {"note": "x"})

    assert (refused.value.field, refused.value.message) == ("data.server_id", REQUIRED)
    assert refused.value.fields == {"data.server_id": [REQUIRED], "data.name": [REQUIRED]}
    assert not Event.objects.exists()


@pytest.mark.django_db
def test_post_events_answers_400_naming_the_path_and_stores_nothing(api):
    data = {"threat_id": "thr_1", "severity": "urgent"}

    response = api.post("/ui/api/events", {"event": "threat.detected", "data": data}, format="json")

    assert response.status_code == 400, response.content
    assert response.json() == {
        "error": "invalid_request",
        "message": "data.severity: 'urgent' is not one of low, medium, high, critical",
        "fields": {"data.severity": ["'urgent' is not one of low, medium, high, critical"]},
    }
    assert not Event.objects.exists()


@pytest.mark.django_db
def test_emit_event_command_refuses_data_that_breaks_the_schema(tenant):
    with pytest.raises(CommandError) as refused:
        call_command("emit_event", tenant.organization.id, "server.blocked", "--data", '{"note": "x"}')

    assert str(refused.value) == f"data.server_id: {REQUIRED}; data.name: {REQUIRED}"
    assert not Event.objects.exists()
    out = io.StringIO()
    call_command("emit_event", tenant.organization.id, "server.blocked", "--data", '{"server_id": "s", "name": "n"}',
                 stdout=out)  # fmt: skip
    assert Event.objects.get().id == out.getvalue().strip()


@pytest.mark.django_db
def test_validation_off_lets_any_data_through(tenant, settings):
    settings.WEBHOOK_EVENT_VALIDATION = "off"

    event = emit(tenant.organization, "server.blocked", {"note": "x"})

    assert Event.objects.get().id == event.id


def test_validation_setting_refuses_an_unknown_value():
    env = {**os.environ, "WEBHOOK_EVENT_VALIDATION": "warn"}

    result = subprocess.run(
        [sys.executable, "-c", "import webhooks_project.settings"], cwd=ROOT, env=env, capture_output=True, text=True
    )

    assert result.returncode != 0
    assert "WEBHOOK_EVENT_VALIDATION must be one of enforce, off, not 'warn'" in result.stderr


@pytest.mark.django_db
def test_event_types_publish_each_types_schema(api):
    results = api.get("/ui/api/event-types").json()["results"]

    assert {t["name"]: t["schema"] for t in results} == {
        name: {"$schema": DIALECT, **data_schema(name)} for name in catalogue.names()
    }


def test_openapi_document_describes_each_events_body_by_its_schema(client):
    components = client.get("/ui/api/schema", HTTP_ACCEPT="application/json").json()["components"]["schemas"]

    assert components["ThreatDetectedData"] == data_schema("threat.detected")
    assert components["EmitThreatDetected"]["properties"] == {
        "event": {"type": "string", "enum": ["threat.detected"]},
        "data": {"$ref": "#/components/schemas/ThreatDetectedData"},
    }
    mapping = components["Emit"]["discriminator"]["mapping"]
    assert set(mapping) == set(catalogue.names())
    assert components["Emit"]["oneOf"] == [{"$ref": ref} for ref in mapping.values()]
