"""The integration examples in examples/: each runs as its own process (standard library only),
verifies the raw body's signature, and forwards what the document says to a loopback recorder."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import requests
from conftest import ROOT

from deliveries.signing import SigningSecrets, signed_headers
from events.catalogue import EVENT_TYPES
from events.services import build_event

SECRET = "whsec_ZXhhbXBsZXMtc2VjcmV0LWZvci10ZXN0cy0xMjM0NQ=="


class Example:
    def __init__(self, script: str, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "examples" / script)],
            env={"PATH": os.environ.get("PATH", ""), "PYTHONUNBUFFERED": "1", "PORT": "0", **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        deadline = time.monotonic() + 20
        while not any("listening on" in line for line in self.lines):
            assert time.monotonic() < deadline, f"{script} did not start: {self.lines}"
            assert self.process.poll() is None, f"{script} exited: {self.lines}"
            time.sleep(0.02)
        port = re.search(r"listening on http://127\.0\.0\.1:(\d+)/", "\n".join(self.lines)).group(1)
        self.url = f"http://127.0.0.1:{port}/webhook"

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


@pytest.fixture
def run_example() -> Iterator[Callable[[str, dict[str, str]], Example]]:
    started: list[Example] = []

    def start(script: str, env: dict[str, str]) -> Example:
        started.append(Example(script, {"WEBHOOK_SECRET": SECRET, **env}))
        return started[-1]

    yield start
    for example in started:
        example.stop()


def deliver(
    url: str,
    event_type: str,
    data: dict,
    *,
    secret: str | SigningSecrets = SECRET,
    delivery_id: str = "dlv_example_1",
):
    """POST a delivery exactly as the service sends it: the stored bytes, signed."""
    event = build_event("org_abc123", event_type, data)
    body = event.payload.encode("utf-8")
    secrets = secret if isinstance(secret, SigningSecrets) else SigningSecrets.of(secret)
    headers = signed_headers(delivery_id=delivery_id, event_type=event_type, body=body, secrets=secrets)
    return requests.post(url, data=body, headers=headers, timeout=10)


def threat(severity: str) -> dict:
    return {**EVENT_TYPES["threat.detected"].sample, "severity": severity}


def test_slack_example_posts_the_documented_message_for_a_threat(run_example, receiver):
    slack = run_example("slack_forwarder.py", {"SLACK_WEBHOOK_URL": receiver.url("/slack")})

    response = deliver(slack.url, "threat.detected", threat("high"))

    assert response.status_code == 200
    (message,) = receiver.wait_for(1, "/slack")
    assert message.json() == {
        "text": "🚨 Threat Detected",
        "blocks": [
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": "*Severity:* high\n*Type:* data_exfiltration\n*User:* user@example.com",
                },
            }
        ],
    }


def test_slack_example_ignores_other_events_and_refuses_bad_signatures(run_example, receiver):
    slack = run_example("slack_forwarder.py", {"SLACK_WEBHOOK_URL": receiver.url("/slack")})

    other = deliver(slack.url, "agent.online", EVENT_TYPES["agent.online"].sample)
    forged = deliver(slack.url, "threat.detected", threat("critical"), secret="whsec_Zm9yZ2Vk")

    assert other.status_code == 200
    assert forged.status_code == 401
    assert receiver.received("/slack") == []


def test_slack_example_forwards_a_retried_delivery_once(run_example, receiver):
    slack = run_example("slack_forwarder.py", {"SLACK_WEBHOOK_URL": receiver.url("/slack")})

    first = deliver(slack.url, "threat.detected", threat("high"), delivery_id="dlv_same")
    retry = deliver(slack.url, "threat.detected", threat("high"), delivery_id="dlv_same")

    assert (first.status_code, retry.status_code) == (200, 200)
    assert len(receiver.received("/slack")) == 1


def test_slack_example_answers_502_so_the_delivery_is_retried_when_slack_fails(run_example, receiver):
    receiver.responses["/slack"] = 500
    slack = run_example("slack_forwarder.py", {"SLACK_WEBHOOK_URL": receiver.url("/slack")})

    response = deliver(slack.url, "threat.detected", threat("high"))

    assert response.status_code == 502


def test_pagerduty_example_triggers_an_incident_for_a_critical_threat(run_example, receiver):
    pagerduty = run_example(
        "pagerduty_forwarder.py", {"PAGERDUTY_EVENTS_URL": receiver.url("/enqueue"), "PAGERDUTY_ROUTING_KEY": "rk_1"}
    )
    data = threat("critical")

    response = deliver(pagerduty.url, "threat.detected", data)

    assert response.status_code == 200
    (incident,) = receiver.wait_for(1, "/enqueue")
    assert incident.json() == {
        "routing_key": "rk_1",
        "event_action": "trigger",
        "dedup_key": "thr_xyz789",
        "payload": {
            "summary": "Critical threat: Attempted to access sensitive API keys",
            "severity": "critical",
            "source": "cybercage",
            "custom_details": data,
        },
    }


def test_pagerduty_example_stays_quiet_below_critical_and_refuses_bad_signatures(run_example, receiver):
    pagerduty = run_example(
        "pagerduty_forwarder.py", {"PAGERDUTY_EVENTS_URL": receiver.url("/enqueue"), "PAGERDUTY_ROUTING_KEY": "rk_1"}
    )

    high = deliver(pagerduty.url, "threat.detected", threat("high"))
    forged = deliver(pagerduty.url, "threat.detected", threat("critical"), secret="whsec_Zm9yZ2Vk")

    assert high.status_code == 200
    assert forged.status_code == 401
    assert receiver.received("/enqueue") == []


@pytest.mark.parametrize("script", ["slack_forwarder.py", "pagerduty_forwarder.py"])
def test_examples_keep_working_through_a_secret_rotation(run_example, receiver, script):
    new = "whsec_bmV3LWV4YW1wbGVzLXNlY3JldC1mb3ItdGVzdHM="
    env = {"SLACK_WEBHOOK_URL": receiver.url("/slack"), "PAGERDUTY_EVENTS_URL": receiver.url("/enqueue")}
    not_updated = run_example(script, env)  # WEBHOOK_SECRET: the old secret alone
    updated = run_example(script, {**env, "WEBHOOK_SECRET": new, "WEBHOOK_PREVIOUS_SECRET": SECRET})
    overlap = SigningSecrets(documented=SECRET, standard=(new, SECRET))
    switched = SigningSecrets.of(new)
    data = EVENT_TYPES["agent.online"].sample  # answered 200, forwarded nowhere

    answers = {
        (name, phase): deliver(example.url, "agent.online", data, secret=secrets).status_code
        for name, example in (("not updated", not_updated), ("updated", updated))
        for phase, secrets in (("overlap", overlap), ("switched", switched), ("forged", "whsec_Zm9yZ2Vk"))
    }

    assert answers == {
        ("not updated", "overlap"): 200,
        ("not updated", "switched"): 401,
        ("not updated", "forged"): 401,
        ("updated", "overlap"): 200,
        ("updated", "switched"): 200,
        ("updated", "forged"): 401,
    }
