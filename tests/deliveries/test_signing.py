"""Signatures verified by independent implementations: the documented JavaScript and the
``standardwebhooks`` reference library; plus our own ``verify`` helper."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from conftest import ROOT
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from deliveries.signing import (
    SigningSecrets,
    documented_signature,
    standard_key,
    standard_signature,
)
from deliveries.signing import signed_headers as deliveries_signed_headers
from deliveries.verify import VerificationError, verify
from events.encoding import js_dumps
from webhooks.services import generate_secret

# The product document's verifier, verbatim, then a harness that runs it over each case.
NODE_DOCUMENTED_VERIFIER = r"""
const crypto = require('crypto');
function verifyWebhook(payload, signature, secret) {
const hmac = crypto.createHmac('sha256', secret);
hmac.update(JSON.stringify(payload));
const expectedSignature = `sha256=${hmac.digest('hex')}`;
return crypto.timingSafeEqual(
Buffer.from(signature),
Buffer.from(expectedSignature)
);
}

let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => { input += chunk; });
process.stdin.on("end", () => {
  const cases = JSON.parse(input);
  const results = cases.map((c) => verifyWebhook(JSON.parse(c.body), c.signature, c.secret));
  process.stdout.write(JSON.stringify(results));
});
"""

PAYLOAD: dict[str, Any] = {
    "type": "order.créé",
    "data": {
        "client": "José Müller",
        "ville": "東京",
        "note": "🎉 merci\u2028ligne",
        "amount": 1.0,
        "ratio": 0.1 + 0.2,
        "tiny": 1.5e-7,
        "huge": 1e21,
        "big_id": 12345678901234567890,
        "10": "ten",
        "2": "two",
        "ctrl": "\x00\x1f\t",
    },
    "3": [1, -0.0, None, True],
}
NON_ASCII_SECRET = "sécret-日本-🔑"


def run_documented_verifier(cases: list[dict[str, str]]) -> list[bool]:
    result = subprocess.run(
        ["node", "-e", NODE_DOCUMENTED_VERIFIER],
        input=json.dumps(cases).encode("ascii"),
        capture_output=True,
        check=True,
        timeout=60,
    )
    return json.loads(result.stdout)


def signed_headers(
    body: bytes,
    secrets: list[str],
    *,
    msg_id: str = "msg_123",
    timestamp: int | None = None,
) -> dict[str, str]:
    timestamp = int(time.time()) if timestamp is None else timestamp
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": standard_signature(secrets, msg_id, timestamp, body),
        "X-CyberCage-Signature": documented_signature(secrets[0], body),
    }


def test_documented_signature_verifies_in_node_when_non_ascii() -> None:
    body = js_dumps(PAYLOAD).encode("utf-8")
    other_body = js_dumps({**PAYLOAD, "type": "order.cancelled"}).encode("utf-8")
    good = documented_signature(NON_ASCII_SECRET, body)
    # timingSafeEqual throws on a length mismatch, so the negative cases keep the length.
    tampered = good[:-1] + ("0" if good[-1] != "0" else "1")
    cases = [
        {"body": body.decode("utf-8"), "signature": good, "secret": NON_ASCII_SECRET},
        {
            "body": body.decode("utf-8"),
            "signature": documented_signature("ascii-secret", body),
            "secret": "ascii-secret",
        },
        {
            "body": body.decode("utf-8"),
            "signature": tampered,
            "secret": NON_ASCII_SECRET,
        },
        {
            "body": body.decode("utf-8"),
            "signature": good,
            "secret": NON_ASCII_SECRET + "x",
        },
        {
            "body": other_body.decode("utf-8"),
            "signature": good,
            "secret": NON_ASCII_SECRET,
        },
    ]
    assert run_documented_verifier(cases) == [True, True, False, False, False]


def test_documented_signature_is_hex_hmac_when_known_vector() -> None:
    # RFC 4231 test case 2.
    assert documented_signature("Jefe", b"what do ya want for nothing?") == (
        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    )


def test_standard_signature_verifies_with_reference_library_when_whsec_secret() -> None:
    secret = generate_secret()
    body = js_dumps(PAYLOAD).encode("utf-8")
    timestamp = int(time.time())
    headers = {
        "webhook-id": "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W",
        "webhook-timestamp": str(timestamp),
        "webhook-signature": standard_signature([secret], "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", timestamp, body),
    }
    assert Webhook(secret).verify(body, headers) == json.loads(body)
    with pytest.raises(WebhookVerificationError):
        Webhook(generate_secret()).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body.replace(b"order", b"ordre"), headers)


def test_standard_signature_verifies_with_reference_library_when_multiple_secrets() -> None:
    old, new, unrelated = generate_secret(), generate_secret(), generate_secret()
    body = js_dumps(PAYLOAD).encode("utf-8")
    timestamp = int(time.time())
    signature = standard_signature([new, old], "msg_1", timestamp, body)
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature,
    }
    assert len(signature.split(" ")) == 2
    assert all(entry.startswith("v1,") for entry in signature.split(" "))
    assert Webhook(new).verify(body, headers) == json.loads(body)
    assert Webhook(old).verify(body, headers) == json.loads(body)
    with pytest.raises(WebhookVerificationError):
        Webhook(unrelated).verify(body, headers)


def test_standard_signature_matches_reference_library_when_compared_directly() -> None:
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    expected = Webhook(secret).sign("msg_p5jXN8AQM9LWM0D4loKWxJek", _utc(1614265330), body.decode())
    assert standard_signature([secret], "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body) == expected
    # The published example signature for this secret and message.
    assert expected == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def _utc(timestamp: int) -> datetime:
    return datetime.fromtimestamp(timestamp, tz=UTC)


def test_standard_key_decodes_when_whsec_prefix() -> None:
    raw = bytes(range(32))
    assert standard_key("whsec_" + base64.b64encode(raw).decode()) == raw
    assert standard_key("whsec_" + base64.b64encode(raw).decode().rstrip("=")) == raw
    assert standard_key("plain-sécret") == "plain-sécret".encode()


@pytest.mark.parametrize(
    ("secret", "message"),
    [("", "empty"), ("whsec_", "empty"), ("whsec_not base64!", "base64")],
)
def test_standard_key_refuses_when_empty_or_not_base64(secret: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        standard_key(secret)


def test_standard_signature_refuses_when_no_secrets() -> None:
    with pytest.raises(ValueError, match="at least one secret"):
        standard_signature([], "msg_1", 1, b"{}")


def test_generate_secret_is_whsec_32_bytes_when_called() -> None:
    secrets = {generate_secret() for _ in range(50)}
    assert len(secrets) == 50
    for secret in secrets:
        assert secret.startswith("whsec_")
        assert len(standard_key(secret)) == 32


def test_verify_accepts_when_both_schemes_valid() -> None:
    secret = generate_secret()
    body = js_dumps(PAYLOAD).encode("utf-8")
    assert verify(body, signed_headers(body, [secret]), secret) == json.loads(body)


def test_verify_accepts_when_header_names_in_any_case() -> None:
    secret = NON_ASCII_SECRET
    body = js_dumps(PAYLOAD).encode("utf-8")
    headers = {name.upper(): value for name, value in signed_headers(body, [secret]).items()}
    assert verify(body, headers, secret) == json.loads(body)
    documented_only = {"x-cybercage-signature": documented_signature(secret, body)}
    assert verify(body, documented_only, secret, allow_documented_only=True) == json.loads(body)


def test_verify_accepts_when_only_standard_headers_and_rotated_secret() -> None:
    old, new = generate_secret(), generate_secret()
    body = js_dumps(PAYLOAD).encode("utf-8")
    headers = signed_headers(body, [new, old])
    del headers["X-CyberCage-Signature"]
    assert verify(body, headers, old) == json.loads(body)
    assert verify(body, headers, new) == json.loads(body)


def test_verify_refuses_a_documented_signature_alone_unless_asked_to_accept_it() -> None:
    secret = generate_secret()
    body = js_dumps(PAYLOAD).encode("utf-8")
    headers = signed_headers(body, [secret], timestamp=1)  # a delivery captured long ago ...
    stripped = {k: v for k, v in headers.items() if not k.lower().startswith("webhook-")}  # ... headers deleted

    with pytest.raises(VerificationError, match="replay"):
        verify(body, stripped, secret)
    with pytest.raises(VerificationError, match="too old"):
        verify(body, headers, secret, allow_documented_only=True)  # the headers still count when present
    assert verify(body, stripped, secret, allow_documented_only=True) == json.loads(body)
    with pytest.raises(VerificationError, match="X-CyberCage-Signature"):
        verify(body, stripped, generate_secret(), allow_documented_only=True)


def test_verify_rejects_when_body_tampered() -> None:
    secret = generate_secret()
    body = js_dumps(PAYLOAD).encode("utf-8")
    headers = signed_headers(body, [secret])
    tampered = body.replace(b"order", b"ordre")
    with pytest.raises(VerificationError, match="webhook-signature"):
        verify(tampered, headers, secret)
    with pytest.raises(VerificationError, match="X-CyberCage-Signature"):
        verify(
            tampered,
            {"X-CyberCage-Signature": headers["X-CyberCage-Signature"]},
            secret,
            allow_documented_only=True,
        )


def test_verify_rejects_when_secret_wrong() -> None:
    secret = generate_secret()
    body = js_dumps(PAYLOAD).encode("utf-8")
    with pytest.raises(VerificationError):
        verify(body, signed_headers(body, [secret]), generate_secret())


def test_verify_rejects_when_one_present_scheme_fails() -> None:
    secret = generate_secret()
    body = js_dumps(PAYLOAD).encode("utf-8")
    headers = signed_headers(body, [secret])
    headers["X-CyberCage-Signature"] = documented_signature("other", body)
    with pytest.raises(VerificationError, match="X-CyberCage-Signature"):
        verify(body, headers, secret)
    headers = signed_headers(body, [secret])
    headers["webhook-signature"] = standard_signature([generate_secret()], "msg_123", int(time.time()), body)
    with pytest.raises(VerificationError, match="webhook-signature"):
        verify(body, headers, secret)


def test_verify_rejects_when_timestamp_stale_or_future() -> None:
    secret = generate_secret()
    body = js_dumps(PAYLOAD).encode("utf-8")
    now = 1_700_000_000
    with pytest.raises(VerificationError, match="too old"):
        verify(body, signed_headers(body, [secret], timestamp=now - 301), secret, now=now)
    with pytest.raises(VerificationError, match="future"):
        verify(body, signed_headers(body, [secret], timestamp=now + 301), secret, now=now)
    assert verify(body, signed_headers(body, [secret], timestamp=now - 300), secret, now=now)
    assert verify(
        body,
        signed_headers(body, [secret], timestamp=now - 50),
        secret,
        now=now,
        tolerance=60,
    )
    with pytest.raises(VerificationError, match="too old"):
        verify(
            body,
            signed_headers(body, [secret], timestamp=now - 61),
            secret,
            now=now,
            tolerance=60,
        )


def test_verify_rejects_when_headers_missing_or_malformed() -> None:
    secret = generate_secret()
    body = js_dumps(PAYLOAD).encode("utf-8")
    with pytest.raises(VerificationError, match="No signature headers"):
        verify(body, {"Content-Type": "application/json"}, secret)
    headers = signed_headers(body, [secret])
    del headers["webhook-timestamp"]
    with pytest.raises(VerificationError, match="webhook-timestamp"):
        verify(body, headers, secret)
    headers = signed_headers(body, [secret])
    headers["webhook-timestamp"] = "1_700_000_000"
    with pytest.raises(VerificationError, match="integer"):
        verify(body, headers, secret)
    headers = signed_headers(body, [secret])
    headers["webhook-signature"] = "v1,not-base64!! v2,abc"
    with pytest.raises(VerificationError, match="webhook-signature"):
        verify(body, headers, secret)


def test_verify_rejects_when_body_not_json_object() -> None:
    secret = generate_secret()
    body = b"[1, 2]"
    with pytest.raises(VerificationError, match="JSON object"):
        verify(body, signed_headers(body, [secret]), secret)


def test_verify_imports_without_django_when_a_receiver_uses_it() -> None:
    """deliveries/verify.py is documented as dependency-free: it and what it imports
    (deliveries.signing, events.encoding) must load where Django cannot be imported."""
    code = (
        "import sys; sys.modules['django'] = None\n"  # any import of django now fails
        "from deliveries.verify import verify\n"
        "print('ok')"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout.strip()) == (0, "ok"), result.stderr


def test_verify_takes_every_secret_a_receiver_holds_through_a_rotation() -> None:
    old, new = generate_secret(), generate_secret()
    body = js_dumps(PAYLOAD).encode("utf-8")
    overlap = deliveries_signed_headers(
        delivery_id="dlv_1", event_type="x", body=body, secrets=SigningSecrets(documented=old, standard=(new, old))
    )
    switched = deliveries_signed_headers(delivery_id="dlv_1", event_type="x", body=body, secrets=SigningSecrets.of(new))

    # During the overlap the old secret alone still verifies both headers, and so do both.
    assert verify(body, overlap, old) == json.loads(body)
    assert verify(body, overlap, [old, new]) == json.loads(body)
    # The new secret alone verifies webhook-signature, but X-CyberCage-Signature is the old one's.
    with pytest.raises(VerificationError, match="X-CyberCage-Signature"):
        verify(body, overlap, [new])
    # After the switch the new secret signs everything: the old one alone no longer verifies.
    assert verify(body, switched, [new]) == json.loads(body)
    assert verify(body, switched, (old, new)) == json.loads(body)
    with pytest.raises(VerificationError):
        verify(body, switched, [old])
    with pytest.raises(ValueError, match="at least one secret"):
        verify(body, switched, [])
