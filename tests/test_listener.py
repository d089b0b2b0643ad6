"""``manage.py webhook_listen``: a local receiver that verifies deliveries and prints them."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
import requests
from conftest import ROOT, wait_until

from deliveries.signing import SigningSecrets, signed_headers, standard_signature
from events.encoding import js_dumps
from events.services import build_event

SECRET = "whsec_bG9jYWwtbGlzdGVuZXItc2VjcmV0LWZvci10ZXN0cw=="
LISTENING = r"Listening on http://127\.0\.0\.1:(\d+)/"


class Listener:
    """The command as a child process, its output collected line by line."""

    def __init__(self, *args: str) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "webhook_listen", *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, pattern: str, timeout: float = 20.0) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                match = re.search(pattern, line)
                if match:
                    return match
            if self.process.poll() is not None and not any(re.search(pattern, x) for x in self.lines):
                break
            time.sleep(0.02)
        raise AssertionError(f"no line matching {pattern!r} in output:\n" + "\n".join(self.lines))

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


@pytest.fixture(scope="module")
def listener() -> Iterator[tuple[Listener, str]]:
    process = Listener("--port", "0", "--secret", SECRET)
    try:
        port = process.wait_for(LISTENING).group(1)
        yield process, f"http://127.0.0.1:{port}/webhook"
    finally:
        process.stop()


def signed_delivery(delivery_id: str = "dlv_listener_test_1") -> tuple[bytes, dict[str, str]]:
    event = build_event("org_abc123", "threat.detected", {"threat_id": "thr_1", "severity": "high", "note": "é"})
    body = event.payload.encode("utf-8")
    return body, signed_headers(
        delivery_id=delivery_id, event_type="threat.detected", body=body, secrets=SigningSecrets.of(SECRET)
    )


def test_listener_answers_200_and_prints_a_verified_delivery(listener):
    process, url = listener
    body, headers = signed_delivery()

    response = requests.post(url, data=body, headers=headers, timeout=10)

    assert response.status_code == 200
    process.wait_for(r"^threat\.detected dlv_listener_test_1 verified$")
    pretty = json.dumps(json.loads(body), indent=2, ensure_ascii=False)
    # The payload's lines follow the verdict; the reader thread may not have them all yet.
    wait_until(lambda: pretty in "\n".join(process.lines), timeout=10, message="payload not printed")
    assert '"note": "é"' in "\n".join(process.lines)


def test_listener_accepts_the_standard_webhooks_headers_alone(listener):
    _, url = listener
    body, headers = signed_delivery("dlv_listener_test_2")
    standard_only = {k: v for k, v in headers.items() if k != "X-CyberCage-Signature"}

    assert requests.post(url, data=body, headers=standard_only, timeout=10).status_code == 200


def test_listener_refuses_a_delivery_whose_timestamp_headers_were_stripped(listener):
    process, url = listener
    body, headers = signed_delivery("dlv_listener_test_5")
    documented_only = {k: v for k, v in headers.items() if not k.startswith("webhook-")}

    response = requests.post(url, data=body, headers=documented_only, timeout=10)

    assert response.status_code == 400
    process.wait_for(r"^threat\.detected dlv_listener_test_5 INVALID: .*replay")


def test_listener_refuses_a_stale_delivery_when_replayed(listener):
    _, url = listener
    body, _ = signed_delivery()
    stale = int(time.time()) - 3600
    headers = signed_headers(
        delivery_id="dlv_listener_test_6", event_type="threat.detected", body=body, secrets=SigningSecrets.of(SECRET)
    )
    headers["webhook-timestamp"] = str(stale)
    headers["webhook-signature"] = standard_signature([SECRET], "dlv_listener_test_6", stale, body)

    response = requests.post(url, data=body, headers=headers, timeout=10)

    assert response.status_code == 400
    assert "too old" in response.text


def test_listener_accepts_the_documented_signature_alone_when_run_with_documented_only():
    process = Listener("--port", "0", "--secret", SECRET, "--documented-only")
    try:
        port = process.wait_for(LISTENING).group(1)
        body, headers = signed_delivery("dlv_listener_test_7")
        documented_only = {k: v for k, v in headers.items() if not k.startswith("webhook-")}

        response = requests.post(f"http://127.0.0.1:{port}/webhook", data=body, headers=documented_only, timeout=10)

        assert response.status_code == 200
        process.wait_for(r"^threat\.detected dlv_listener_test_7 verified$")
    finally:
        process.stop()


def test_listener_answers_400_when_the_body_was_changed(listener):
    process, url = listener
    body, headers = signed_delivery("dlv_listener_test_3")
    tampered = js_dumps({**json.loads(body), "data": {"severity": "low"}}).encode()

    response = requests.post(url, data=tampered, headers=headers, timeout=10)

    assert response.status_code == 400
    assert "invalid" in response.text
    process.wait_for(r"^threat\.detected dlv_listener_test_3 INVALID: ")
    assert not any("dlv_listener_test_3 verified" in line for line in process.lines)


def test_listener_answers_400_when_signed_with_another_secret(listener):
    _, url = listener
    body, _ = signed_delivery()
    headers = signed_headers(
        delivery_id="dlv_listener_test_4",
        event_type="threat.detected",
        body=body,
        secrets=SigningSecrets.of("whsec_b3RoZXI="),
    )

    response = requests.post(url, data=body, headers=headers, timeout=10)

    assert response.status_code == 400


def test_listener_with_the_old_and_the_new_secret_accepts_deliveries_across_a_rotation():
    new = "whsec_bmV3LWxpc3RlbmVyLXNlY3JldC1mb3ItdGVzdHM="
    both = Listener("--port", "0", "--secret", SECRET, "--secret", new)
    old_only = Listener("--port", "0", "--secret", SECRET)
    try:
        ports = [process.wait_for(LISTENING).group(1) for process in (both, old_only)]
        urls = [f"http://127.0.0.1:{port}/webhook" for port in ports]
        body = build_event("org_abc123", "agent.online", {"agent_id": "agt_1"}).payload.encode()
        phases = {
            "overlap": SigningSecrets(documented=SECRET, standard=(new, SECRET)),
            "switched": SigningSecrets.of(new),
            "forged": SigningSecrets.of("whsec_b3RoZXI="),
        }
        answers = {
            (phase, url): requests.post(
                url,
                data=body,
                headers=signed_headers(
                    delivery_id=f"dlv_{phase}", event_type="agent.online", body=body, secrets=secrets
                ),
                timeout=10,
            ).status_code
            for phase, secrets in phases.items()
            for url in urls
        }
    finally:
        both.stop()
        old_only.stop()

    assert answers == {
        ("overlap", urls[0]): 200,
        ("overlap", urls[1]): 200,  # not yet updated: X-CyberCage-Signature is still the old secret's
        ("switched", urls[0]): 200,
        ("switched", urls[1]): 400,
        ("forged", urls[0]): 400,
        ("forged", urls[1]): 400,
    }
