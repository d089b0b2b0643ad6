"""Signature verification for receivers of our webhooks.

Used by integrators' sample code, our tests and the local listener command. Pure module:
no Django imports.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping, Sequence
from typing import Any

from deliveries.signing import documented_signature, standard_key
from events.encoding import parse_json_object

__all__ = ["DEFAULT_TOLERANCE_SECONDS", "VerificationError", "verify"]

# Standard Webhooks' recommended window: long enough for clock skew and queueing, short
# enough that a captured request cannot be replayed much later.
DEFAULT_TOLERANCE_SECONDS = 300

DOCUMENTED_HEADER = "x-cybercage-signature"
STANDARD_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")


class VerificationError(Exception):
    """The delivery is not authentic, is stale, or its body is not a JSON object."""


def verify(
    body: bytes,
    headers: Mapping[str, str],
    secrets: str | Sequence[str],
    *,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
    allow_documented_only: bool = False,
) -> dict[str, Any]:
    """Verify a delivery over its RAW body and return the parsed payload.

    Pass the body bytes exactly as received, before any JSON parsing. Header names are
    matched case-insensitively. ``secrets`` is every secret the receiver holds: one, or the old
    and the new while it moves through a rotation; a signature by any of them will do. Rules:

    * The Standard Webhooks headers (``webhook-id``, ``webhook-timestamp``,
      ``webhook-signature``) must all be present, the timestamp within ``tolerance`` seconds
      of ``now`` (default: the current time), and at least one ``v1,`` entry must match the
      HMAC of ``"{id}.{timestamp}.{body}"``. The timestamp is signed, so a captured delivery
      cannot be replayed after ``tolerance``, and deleting the headers does not help: a
      delivery without them is refused.
    * If ``X-CyberCage-Signature`` is present, it must equal ``sha256=<hex HMAC>`` of the
      body too (during a rotation's overlap it is the previous secret's: keep that one until
      the switch).
    * With ``allow_documented_only=True`` a delivery carrying only ``X-CyberCage-Signature``
      is accepted on that signature. It has no timestamp, so such a delivery could be a
      replay: ask for this only for senders that do not send the Standard Webhooks headers.

    Raises VerificationError with the reason otherwise.
    """
    held = [secrets] if isinstance(secrets, str) else list(secrets)
    if not held:
        raise ValueError("verify needs at least one secret")
    lowered = {name.lower(): value for name, value in headers.items()}
    has_standard = any(name in lowered for name in STANDARD_HEADERS)
    documented = lowered.get(DOCUMENTED_HEADER)
    if not has_standard:
        if documented is None:
            raise VerificationError(
                "No signature headers: expected webhook-id/webhook-timestamp/webhook-signature"
                + (" or X-CyberCage-Signature" if allow_documented_only else "")
            )
        if not allow_documented_only:
            raise VerificationError(
                "Missing webhook-id/webhook-timestamp/webhook-signature: without a signed timestamp the delivery "
                "could be a replay (X-CyberCage-Signature alone is accepted only when asked for: "
                "allow_documented_only=True, webhook_listen --documented-only)"
            )
    else:
        _verify_standard(body, lowered, held, tolerance, time.time() if now is None else now)
    if documented is not None:
        given = documented.strip().encode("utf-8")
        # Every secret is compared, so the time taken does not say which one matched.
        matches = [hmac.compare_digest(given, documented_signature(secret, body).encode("ascii")) for secret in held]
        if not any(matches):
            raise VerificationError("X-CyberCage-Signature does not match the body with any of the secrets")
    try:
        return parse_json_object(body)
    except ValueError as exc:
        raise VerificationError(f"Body is not a JSON object: {exc}") from None


def _verify_standard(body: bytes, headers: dict[str, str], secrets: list[str], tolerance: int, now: float) -> None:
    missing = [name for name in STANDARD_HEADERS if not headers.get(name)]
    if missing:
        raise VerificationError(f"Missing Standard Webhooks header(s): {', '.join(missing)}")
    msg_id = headers["webhook-id"].strip()
    timestamp_text = headers["webhook-timestamp"].strip()
    # Digits only: int() would also take "+1", " 1" or "1_000", none of which we send.
    if not (timestamp_text.isascii() and timestamp_text.isdigit()):
        raise VerificationError("webhook-timestamp must be integer Unix seconds")
    timestamp = int(timestamp_text)
    if timestamp < now - tolerance:
        raise VerificationError("webhook-timestamp is too old (possible replay)")
    if timestamp > now + tolerance:
        raise VerificationError("webhook-timestamp is too far in the future (check the clock)")

    try:
        keys = [standard_key(secret) for secret in secrets]
    except ValueError as exc:
        raise VerificationError(f"Unusable secret: {exc}") from None
    signed = f"{msg_id}.{timestamp_text}.".encode() + body
    expected = [hmac.new(key, signed, hashlib.sha256).digest() for key in keys]
    for entry in headers["webhook-signature"].split():
        version, _, encoded = entry.partition(",")
        if version != "v1":
            # Other versions (e.g. asymmetric v1a) are not ours to check; skip, not fail.
            continue
        try:
            candidate = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            continue
        if any([hmac.compare_digest(candidate, digest) for digest in expected]):
            return
    raise VerificationError("No webhook-signature entry matches the body and any of the secrets")
