"""Errors services raise for the API, the dashboard and the admin to show (no web imports here)."""

from __future__ import annotations

# What a request without a usable API key, or without a JSON body, is told: how to send one.
# Here, not in errors.py, because the authentication class (which DRF imports with errors.py's
# own imports) says the first one too.
SEND_API_KEY = "Send your API key as 'Authorization: Bearer <key>'."
SEND_JSON = "Send a JSON body with Content-Type: application/json."


class Conflict(Exception):
    """A request that is well formed but clashes with the current state (HTTP 409).

    Raised by services; the API answers ``{"error": "conflict", "message": message}`` and the
    dashboard and the admin show the message.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
