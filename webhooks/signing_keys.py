"""How a webhook's secret becomes its Standard Webhooks signing key, and which secrets sign.

One rule, used where secrets are accepted (API, dashboard, services: a secret that cannot sign
is refused there, never stored) and where they sign (``deliveries.signing``). Pure module: no
Django imports.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

__all__ = ["SECRET_PREFIX", "SigningSecrets", "standard_key"]

SECRET_PREFIX = "whsec_"


@dataclass(frozen=True)
class SigningSecrets:
    """The secrets that sign a delivery now (``Webhook.signing_secrets``).

    ``documented`` signs ``X-CyberCage-Signature``: during a rotation's overlap the previous
    secret, so that a receiver not yet updated — and the product document's verifier, which
    reads that header alone — keeps verifying; otherwise the current one. ``standard`` are
    ``webhook-signature``'s, one ``v1`` entry each: the current secret, and the previous one
    beside it during the overlap.
    """

    documented: str
    standard: tuple[str, ...]

    @classmethod
    def of(cls, secret: str) -> SigningSecrets:
        """One secret signing both headers: no rotation under way."""
        return cls(documented=secret, standard=(secret,))


def standard_key(secret: str) -> bytes:
    """Return the Standard Webhooks HMAC key for ``secret``.

    ``whsec_<base64>`` secrets carry the key in base64, as the Standard Webhooks libraries
    expect; any other secret is used as its UTF-8 bytes. Raises ValueError for a bad or
    empty key, since signing with one would give receivers nothing to check.
    """
    if secret.startswith(SECRET_PREFIX):
        encoded = secret[len(SECRET_PREFIX) :]
        # Tolerate missing padding, as the reference libraries do.
        encoded += "=" * (-len(encoded) % 4)
        try:
            key = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            raise ValueError(f"secret starting with {SECRET_PREFIX!r} must continue with base64") from None
    else:
        key = secret.encode("utf-8")
    if not key:
        raise ValueError("webhook secret is empty")
    return key
