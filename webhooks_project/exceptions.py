"""Errors services raise for the API, the dashboard and the admin to show (no web imports here)."""

from __future__ import annotations


class Conflict(Exception):
    """A request that is well formed but clashes with the current state (HTTP 409).

    Raised by services; the API answers ``{"error": "conflict", "message": message}`` and the
    dashboard and the admin show the message.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
