"""Encryption of webhook signing secrets at rest (Fernet: AES-128-CBC + HMAC-SHA256)."""

from __future__ import annotations

import base64
import hashlib
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings


@lru_cache(maxsize=4)
def _fernet(configured_key: str, secret_key: str) -> Fernet:
    if configured_key:
        try:
            return Fernet(configured_key.encode())
        except ValueError:
            # Any other string is stretched into a key, so a passphrase works too.
            material = hashlib.sha256(configured_key.encode()).digest()
    else:
        material = hashlib.sha256(b"webhook-secrets:" + secret_key.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(material))


def _current() -> Fernet:
    return _fernet(settings.WEBHOOK_ENCRYPTION_KEY, settings.SECRET_KEY)


def encrypt(plaintext: str) -> str:
    return _current().encrypt(plaintext.encode("utf-8")).decode("ascii")


def decrypt(token: str) -> str:
    try:
        return _current().decrypt(token.encode("ascii")).decode("utf-8")
    except InvalidToken as exc:
        raise ValueError("webhook secret cannot be decrypted: wrong WEBHOOK_ENCRYPTION_KEY?") from exc
