"""The README's receiver snippets, run as printed (Python in process, JavaScript in Node),
against deliveries signed as the service signs them: fresh ones verify; replayed, stripped or
tampered ones do not."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import time

import pytest
from conftest import ROOT

from deliveries.signing import signed_headers, standard_signature
from events.services import build_event

SECRETS = ["whsec_" + base64.b64encode(b"readme-receiver-key-0123456789ab").decode(), "a-plain-secret-1234"]


def _snippet(language: str) -> str:
    section = (ROOT / "README.md").read_text(encoding="utf-8").split("## What a receiver gets", 1)[1]
    section = section.split("\n## ", 1)[0]
    (code,) = re.findall(rf"```{language}\n(.*?)```", section, flags=re.S)
    return code


def _cases(secret: str) -> list[tuple[str, bytes, dict[str, str], bool]]:
    """(name, body, lower-case headers, should verify) for one secret."""
    body = build_event(
        "org_readme", "threat.detected", {"threat_id": "thr_1", "severity": "high", "note": "é\u2028"}
    ).payload.encode()
    fresh = {
        k.lower(): v
        for k, v in signed_headers(delivery_id="dlv_1", event_type="x", body=body, secrets=[secret]).items()
    }
    stale_at = int(time.time()) - 3600
    stale = {
        **fresh,
        "webhook-timestamp": str(stale_at),
        "webhook-signature": standard_signature([secret], "dlv_1", stale_at, body),
    }
    stripped = {k: v for k, v in fresh.items() if not k.startswith("webhook-")}
    rotated = {
        **fresh,
        "webhook-signature": standard_signature([SECRETS[0], secret], "dlv_1", int(fresh["webhook-timestamp"]), body),
    }
    return [
        ("fresh", body, fresh, True),
        ("during a rotation", body, rotated, True),
        ("replayed an hour later", body, stale, False),
        ("timestamp headers deleted", body, stripped, False),
        ("timestamp changed", body, {**fresh, "webhook-timestamp": str(int(time.time()) + 1)}, False),
        ("body changed", body.replace(b"high", b"low!"), fresh, False),
    ]


@pytest.mark.parametrize("secret", SECRETS)
def test_python_receiver_snippet_verifies_fresh_deliveries_only(secret):
    namespace: dict = {}
    exec(_snippet("python"), namespace)  # noqa: S102 - the README's own code

    for name, body, headers, expected in _cases(secret):
        assert namespace["verify"](body, headers, secret) is expected, name


@pytest.mark.parametrize("secret", SECRETS)
def test_node_receiver_snippet_verifies_fresh_deliveries_only(secret):
    cases = _cases(secret)
    harness = (
        _snippet("javascript")
        + """
let input = "";
process.stdin.on("data", (chunk) => { input += chunk; });
process.stdin.on("end", () => {
  const { secret, cases } = JSON.parse(input);
  process.stdout.write(JSON.stringify(cases.map((c) => verify(Buffer.from(c.body, "base64"), c.headers, secret))));
});
"""
    )
    payload = {
        "secret": secret,
        "cases": [{"body": base64.b64encode(body).decode(), "headers": headers} for _, body, headers, _ in cases],
    }

    result = subprocess.run(
        ["node", "-e", harness], input=json.dumps(payload).encode(), capture_output=True, check=True, timeout=60
    )

    verdicts = json.loads(result.stdout)
    assert {name: verdict for (name, *_), verdict in zip(cases, verdicts, strict=True)} == {
        name: expected for name, _, _, expected in cases
    }
