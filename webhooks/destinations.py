"""Where webhook requests may go (placeholder until the address policy moves here)."""

from __future__ import annotations

from urllib.parse import urlsplit


class UrlRefused(ValueError):
    pass


def check_url(url: str, *, resolve: bool = True) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UrlRefused("Enter an absolute http:// or https:// URL.")
