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

from deliveries.signing import SigningSecrets, signed_headers, standard_signature
from events.services import build_event

SECRETS = ["whsec_" + base64.b64encode(b"readme-receiver-key-0123456789ab").decode(), "a-plain-secret-1234"]
# The secret a rotation moves to.
OTHER = "whsec_" + base64.b64encode(b"readme-receiver-rotated-key-0123").decode()


def _snippet(language: str) -> str:
    section = (ROOT / "README.md").read_text(encoding="utf-8").split("## What a receiver gets", 1)[1]
    section = section.split("\n## ", 1)[0]
    (code,) = re.findall(rf"```{language}\n(.*?)```", section, flags=re.S)
    return code


def _cases(secret: str) -> list[tuple[str, bytes, dict[str, str], list[str], bool]]:
    """(name, body, lower-case headers, the receiver's secrets, should verify) for one secret."""
    body = build_event("org_readme", "threat.detected", {"threat_id": "thr_1", "severity": "high", "note": "é\u2028"})
    body = body.payload.encode()

    def signed(secrets: SigningSecrets) -> dict[str, str]:
        headers = signed_headers(delivery_id="dlv_1", event_type="x", body=body, secrets=secrets)
        return {name.lower(): value for name, value in headers.items()}

    fresh = signed(SigningSecrets.of(secret))
    stale_at = int(time.time()) - 3600
    stale = {
        **fresh,
        "webhook-timestamp": str(stale_at),
        "webhook-signature": standard_signature([secret], "dlv_1", stale_at, body),
    }
    stripped = {k: v for k, v in fresh.items() if not k.startswith("webhook-")}
    # A rotation from ``secret`` to OTHER: the overlap signs with both, the switch with OTHER alone.
    overlap = signed(SigningSecrets(documented=secret, standard=(OTHER, secret)))
    switched = signed(SigningSecrets.of(OTHER))
    return [
        ("fresh", body, fresh, [secret], True),
        ("replayed an hour later", body, stale, [secret], False),
        ("timestamp headers deleted", body, stripped, [secret], False),
        ("timestamp changed", body, {**fresh, "webhook-timestamp": str(int(time.time()) + 1)}, [secret], False),
        ("body changed", body.replace(b"high", b"low!"), fresh, [secret], False),
        ("overlap, old secret only", body, overlap, [secret], True),
        ("overlap, new secret only", body, overlap, [OTHER], True),
        ("overlap, both secrets", body, overlap, [secret, OTHER], True),
        ("switched, both secrets", body, switched, [secret, OTHER], True),
        ("switched, new secret only", body, switched, [OTHER], True),
        ("switched, old secret only", body, switched, [secret], False),
    ]


@pytest.mark.parametrize("secret", SECRETS)
def test_python_receiver_snippet_verifies_fresh_deliveries_only(secret):
    namespace: dict = {}
    exec(_snippet("python"), namespace)  # noqa: S102 - the README's own code

    for name, body, headers, secrets, expected in _cases(secret):
        assert namespace["verify"](body, headers, secrets) is expected, name


@pytest.mark.parametrize("secret", SECRETS)
def test_node_receiver_snippet_verifies_fresh_deliveries_only(secret):
    cases = _cases(secret)
    harness = (
        _snippet("javascript")
        + """
let input = "";
process.stdin.on("data", (chunk) => { input += chunk; });
process.stdin.on("end", () => {
  const { cases } = JSON.parse(input);
  process.stdout.write(JSON.stringify(cases.map((c) => verify(Buffer.from(c.body, "base64"), c.headers, c.secrets))));
});
"""
    )
    payload = {
        "cases": [
            {"body": base64.b64encode(body).decode(), "headers": headers, "secrets": secrets}
            for _, body, headers, secrets, _ in cases
        ],
    }

    result = subprocess.run(
        ["node", "-e", harness], input=json.dumps(payload).encode(), capture_output=True, check=True, timeout=60
    )

    verdicts = json.loads(result.stdout)
    assert {name: verdict for (name, *_), verdict in zip(cases, verdicts, strict=True)} == {
        name: expected for name, *_, expected in cases
    }
