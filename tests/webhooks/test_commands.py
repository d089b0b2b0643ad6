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


def _jsonl(tmp_path, items: list[object], blank_lines: bool = False) -> str:
    path = tmp_path / "events.jsonl"
    lines = [item if isinstance(item, str) else json.dumps(item) for item in items]
    path.write_text(("\n\n" if blank_lines else "\n").join(lines) + "\n", encoding="utf-8")
    return str(path)


def test_emit_event_file_stores_every_line_in_batches_printing_ids_in_order(tmp_path, settings):
    settings.WEBHOOK_BATCH_MAX_EVENTS = 3
    org_id = _run("create_organization", "Acme")
    items = [{"event": "agent.online", "data": {"agent_id": f"agt_{i}"}} for i in range(7)]
    items.append({"event": "agent.online", "data": {"agent_id": "agt_0"}, "idempotency_key": "k"})
    items.append({"event": "agent.online", "data": {"agent_id": "agt_0"}, "idempotency_key": "k"})
    out = io.StringIO()

    call_command("emit_event", org_id, "--file", _jsonl(tmp_path, items, blank_lines=True), stdout=out)

    ids = out.getvalue().split()
    assert len(ids) == 9
    assert ids[7] == ids[8]
    stored = Event.objects.in_bulk(ids)
    assert [stored[event_id].data for event_id in ids] == [item["data"] for item in items]
    assert Event.objects.count() == 8


def test_emit_event_file_refuses_everything_when_a_line_is_not_json(tmp_path):
    org_id = _run("create_organization", "Acme")
    items = [{"event": "agent.online", "data": {"agent_id": "agt_1"}}, "{not json"]

    with pytest.raises(CommandError, match="^line 2: "):
        call_command("emit_event", org_id, "--file", _jsonl(tmp_path, items), stdout=io.StringIO())

    assert not Event.objects.exists()


def test_emit_event_file_names_the_line_of_an_invalid_event_and_what_was_stored(tmp_path, settings):
    settings.WEBHOOK_BATCH_MAX_EVENTS = 2
    org_id = _run("create_organization", "Acme")
    items = [{"event": "agent.online", "data": {"agent_id": f"agt_{i}"}} for i in range(5)]
    items[3] = {"event": "agent.online", "data": {}}

    with pytest.raises(CommandError) as refused:
        call_command("emit_event", org_id, "--file", _jsonl(tmp_path, items), stdout=io.StringIO())

    assert str(refused.value) == (
        "line 4: data.agent_id: This field is required."
        " (the 2 events before it were stored, nothing from line 3 on was)"
    )
    assert Event.objects.count() == 2
