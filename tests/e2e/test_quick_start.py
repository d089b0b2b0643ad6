"""End to end: the README's first command serves the API on :8000, with a worker and beat."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import urllib.request

import pytest
from conftest import ROOT, service_env, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


DOCUMENTED_PORT = 8000


def _port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("0.0.0.0", port))
        except OSError:
            return False
        return True


def _healthz(port: int) -> int | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            return response.status
    except OSError:
        return None


def test_ci_serve_runs_web_on_8000_and_worker_and_beat_when_port_unset(tmp_path, redis_client):
    port = DOCUMENTED_PORT
    if not _port_is_free(port):
        pytest.skip(f"something else listens on :{port}")
    env = service_env()
    env.pop("PORT", None)  # as in the README: nothing set
    log = tmp_path / "serve.log"
    with log.open("wb") as output:
        serve = subprocess.Popen(
            ["bash", ".ci/serve"],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until(lambda: _healthz(port) == 200, timeout=90, message=f"no /healthz on :{port}")
        wait_until(
            lambda: "ready." in log.read_text() and "beat: Starting" in log.read_text(),
            timeout=30,
            message="worker and beat did not start",
        )
    finally:
        os.killpg(serve.pid, signal.SIGTERM)
        serve.wait(timeout=30)
