"""A new secret is shown once, on the page after the request that made it.

It is handed over in the session, encrypted (sessions are rows in the database), and taken out
by the first page that could show it: never in a URL, a cookie or a flash message (Django's
messages travel in a cookie). The dashboard reveals webhook signing secrets this way, the admin
new API keys.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from webhooks import crypto

_SESSION_KEY = "reveal.{kind}"


def hand_over(request: HttpRequest, *, kind: str, object_id: str, secret: str, **details: Any) -> None:
    """Keep ``secret`` of ``object_id`` for the next page that takes a ``kind``; ``details``
    (JSON values) come back with it."""
    request.session[_SESSION_KEY.format(kind=kind)] = {
        **details,
        "object_id": object_id,
        "secret": crypto.encrypt(secret),
    }


def take(request: HttpRequest, *, kind: str, object_id: str) -> dict[str, Any] | None:
    """The secret handed over for ``object_id`` as ``{"value": secret, **details}``, once.

    Whatever was handed over for ``kind`` is gone afterwards, even when it was for another
    object: a secret is shown on the very next page or not at all.
    """
    handed = request.session.pop(_SESSION_KEY.format(kind=kind), None)
    if not handed or handed.get("object_id") != object_id:
        return None
    try:
        value = crypto.decrypt(handed["secret"])
    except (KeyError, ValueError):
        return None
    details = {name: item for name, item in handed.items() if name not in ("object_id", "secret")}
    return {**details, "value": value}
