"""Signatures for outgoing deliveries.

Two schemes are produced side by side:

* the documented ``X-CyberCage-Signature: sha256=<hex>`` header, an HMAC-SHA256 keyed with
  the secret's UTF-8 bytes over the body. The product document's JavaScript verifier hashes
  ``JSON.stringify(payload)``, which equals the body only because bodies are serialized
  with ``events.encoding.js_dumps``;
* the Standard Webhooks ``webhook-signature`` header (https://www.standardwebhooks.com),
  which signs ``"{id}.{timestamp}.{body}"`` and carries one entry per active secret.

During a rotation's overlap ``X-CyberCage-Signature`` is the previous secret's and
``webhook-signature`` carries both (``SigningSecrets``), so no receiver breaks until the switch.

Always sign the exact bytes that are sent. ``signed_headers`` puts both on one attempt, with
the documented headers. Pure module: no Django imports (the receivers' dependency-free
``deliveries/verify.py`` imports it).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from datetime import UTC, datetime

from events.encoding import iso_timestamp

# How a secret becomes the key is the webhooks app's rule: it refuses secrets that cannot sign.
from webhooks.signing_keys import SECRET_PREFIX, SigningSecrets, standard_key

__all__ = [
    "SECRET_PREFIX",
    "SigningSecrets",
    "documented_signature",
    "signed_headers",
    "standard_key",
    "standard_signature",
]


def documented_signature(secret: str, body: bytes) -> str:
    """Return the ``X-CyberCage-Signature`` value: ``sha256=<hex HMAC-SHA256>``.

    The key is the whole secret as UTF-8 (prefix included), as JavaScript's
    ``crypto.createHmac('sha256', secret)`` uses it.
    """
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def standard_signature(secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """Return the ``webhook-signature`` value: ``v1,<base64>`` per secret, space-separated.

    Entries keep the order of ``secrets``; a receiver accepts the message if any entry
    matches one of its secrets.
    """
    if not secrets:
        raise ValueError("at least one secret is needed to sign a delivery")
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return " ".join(
        "v1," + base64.b64encode(hmac.new(standard_key(secret), signed, hashlib.sha256).digest()).decode("ascii")
        for secret in secrets
    )


def signed_headers(*, delivery_id: str, event_type: str, body: bytes, secrets: SigningSecrets) -> dict[str, str]:
    """The documented headers plus Standard Webhooks', for one attempt.

    ``http.post`` adds the ``User-Agent`` (WEBHOOK_USER_AGENT) to every request.
    """
    now = datetime.now(UTC)
    unix = int(now.timestamp())
    return {
        "Content-Type": "application/json",
        "X-CyberCage-Signature": documented_signature(secrets.documented, body),
        "X-CyberCage-Event": event_type,
        "X-CyberCage-Delivery-ID": delivery_id,
        "X-CyberCage-Timestamp": iso_timestamp(now),
        "webhook-id": delivery_id,
        "webhook-timestamp": str(unix),
        "webhook-signature": standard_signature(secrets.standard, delivery_id, unix, body),
    }
