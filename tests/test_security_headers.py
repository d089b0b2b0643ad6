"""HTTPS settings follow DJANGO_SECURE_COOKIES (Secure cookies and HSTS), read from the
environment by a fresh process exactly as the web process reads them."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import ROOT

# Runs in a fresh interpreter with the production settings module: GET /ui/login (no database
# needed) over HTTPS, over plain HTTP, and over plain HTTP from a proxy that terminated TLS.
PROBE = """
import json
import django
django.setup()
from django.conf import settings
from django.test import Client

def probe(**extra):
    response = Client().get("/ui/login", **extra)
    return {
        "status": response.status_code,
        "hsts": response.headers.get("Strict-Transport-Security"),
        "csrf_cookie_secure": bool(response.cookies["csrftoken"]["secure"]),
    }

print(json.dumps({
    "https": probe(secure=True),
    "http": probe(),
    "proxied_https": probe(HTTP_X_FORWARDED_PROTO="https"),
    "session_cookie_secure": settings.SESSION_COOKIE_SECURE,
    "csrf_cookie_secure": settings.CSRF_COOKIE_SECURE,
}))
"""


def run_probe(**env: str) -> dict:
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "SECURE_")) and key != "PYTHONPATH"
    }
    environment.update(DJANGO_SETTINGS_MODULE="webhooks_project.settings", DJANGO_ALLOWED_HOSTS="testserver", **env)
    result = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_https_is_required_of_browsers_and_cookies_are_secure_when_secure_cookies_are_on():
    seen = run_probe(DJANGO_SECURE_COOKIES="true")

    assert seen["https"] == {"status": 200, "hsts": "max-age=31536000", "csrf_cookie_secure": True}
    assert seen["http"]["hsts"] is None  # HSTS means something over HTTPS only
    assert seen["proxied_https"]["hsts"] is None  # no proxy trusted: the header proves nothing
    assert seen["session_cookie_secure"] is True
    assert seen["csrf_cookie_secure"] is True


def test_nothing_is_sent_secure_only_when_secure_cookies_are_off():
    seen = run_probe()

    assert seen["https"] == {"status": 200, "hsts": None, "csrf_cookie_secure": False}
    assert seen["session_cookie_secure"] is False


def test_hsts_follows_the_proxy_and_the_settings_when_behind_a_tls_proxy():
    seen = run_probe(
        DJANGO_SECURE_COOKIES="1",
        DJANGO_TRUSTED_PROXY_HOPS="1",
        DJANGO_HSTS_SECONDS="600",
        DJANGO_HSTS_INCLUDE_SUBDOMAINS="1",
    )

    assert seen["proxied_https"]["hsts"] == "max-age=600; includeSubDomains"
    assert seen["http"]["hsts"] is None


@pytest.mark.django_db
def test_admin_pages_send_the_content_security_policy_when_served(client):
    from webhooks_project.middleware import CONTENT_SECURITY_POLICY

    login = client.get("/admin/login/")
    dashboard = client.get("/ui/login")

    assert login.status_code == 200
    assert login["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert dashboard["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert "script-src 'self'" in CONTENT_SECURITY_POLICY
    assert "unsafe-inline" not in CONTENT_SECURITY_POLICY
