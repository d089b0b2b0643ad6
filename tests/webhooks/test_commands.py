"""Management commands an operator scripts: their last stdout line is the thing created."""

from __future__ import annotations

import io
import json
import re

import pytest
from conftest import api_client
from django.core.management import CommandError, call_command

from events.models import Event
from webhooks.models import ApiKey, Organization

pytestmark = pytest.mark.django_db


def _run(*args: str) -> str:
    """Run a command; return its last stdout line (what a shell script would capture)."""
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    lines = out.getvalue().splitlines()
    assert lines, err.getvalue()
    return lines[-1]


def test_create_organization_prints_id_alone_on_last_line():
    org_id = _run("create_organization", "Acme Corp")
    assert org_id.startswith("org_")
    assert org_id.strip() == org_id
    assert " " not in org_id
    assert Organization.objects.get(id=org_id).name == "Acme Corp"


def test_create_api_key_prints_key_that_authenticates():
    org_id = _run("create_organization", "Acme")
    key = _run("create_api_key", org_id)
    assert re.fullmatch(r"cck_[0-9a-f]{8}_[A-Za-z0-9_-]{40}", key), key
    response = api_client(key).get("/ui/api/webhooks")
    assert response.status_code == 200, response.content
    api_key = ApiKey.objects.get(organization_id=org_id)
    assert key not in (api_key.key_hash, api_key.prefix, api_key.id)


def test_create_api_key_refuses_when_organization_unknown():
    with pytest.raises(CommandError, match="org_nope"):
        call_command("create_api_key", "org_nope", stdout=io.StringIO(), stderr=io.StringIO())
    assert not ApiKey.objects.exists()


def test_revoke_api_key_makes_key_answer_401():
    org_id = _run("create_organization", "Acme")
    key = _run("create_api_key", org_id)
    other = _run("create_api_key", org_id)
    _run("revoke_api_key", key)
    response = api_client(key).get("/ui/api/webhooks")
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"
    # Only that key: the organization's other key still works.
    assert api_client(other).get("/ui/api/webhooks").status_code == 200


def test_revoke_api_key_accepts_key_id():
    org_id = _run("create_organization", "Acme")
    key = _run("create_api_key", org_id)
    _run("revoke_api_key", ApiKey.objects.get(organization_id=org_id).id)
    assert api_client(key).get("/ui/api/webhooks").status_code == 401


def test_revoke_api_key_refuses_when_key_unknown():
    with pytest.raises(CommandError):
        call_command("revoke_api_key", "cck_00000000_nothing", stdout=io.StringIO(), stderr=io.StringIO())


def test_emit_event_stores_event_with_given_data():
    org_id = _run("create_organization", "Acme")
    data = {"threat_id": "thr_1", "severity": "critical", "agent": {"hostname": "ноутбук"}}
    event_id = _run("emit_event", org_id, "threat.detected", "--data", json.dumps(data))
    event = Event.objects.get(id=event_id)
    assert (event.organization_id, event.type, event.data) == (org_id, "threat.detected", data)


AGENT = json.dumps({"agent_id": "agt_1"})


def test_emit_event_returns_same_event_when_idempotency_key_repeated():
    org_id = _run("create_organization", "Acme")
    first = _run("emit_event", org_id, "agent.offline", "--data", AGENT, "--idempotency-key", "k1")
    second = _run("emit_event", org_id, "agent.offline", "--data", AGENT, "--idempotency-key", "k1")
    assert first == second
    assert Event.objects.count() == 1


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["threat.detected", "--data", "{not json"], "--data"),
        (["threat.detected", "--data", "[1, 2]"], "--data"),
        (["threat.detected", "--data", '{"x": NaN}'], "--data"),
        (["threat.exploded"], "threat.exploded"),
    ],
)
def test_emit_event_refuses_and_stores_nothing_when_input_invalid(args, fragment):
    org_id = _run("create_organization", "Acme")
    with pytest.raises(CommandError, match=fragment):
        call_command("emit_event", org_id, *args, stdout=io.StringIO(), stderr=io.StringIO())
    assert not Event.objects.exists()


def test_emit_event_refuses_when_organization_unknown():
    with pytest.raises(CommandError, match="org_nope"):
        call_command("emit_event", "org_nope", "threat.detected", stdout=io.StringIO(), stderr=io.StringIO())
    assert not Event.objects.exists()
