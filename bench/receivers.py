"""The receivers deliveries go to: nginx answering 200 as fast as a receiver can (throughput and
floor; the multi-process Python receiver when nginx is not installed), and the Python receiver
that records when each event arrived and holds the hanging endpoints open (latency, isolation)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import harness
from common import State, out
from harness import RESULTS, Proc

# Seconds to wait on nginx's status page, and on the Python receiver's pages.
NGINX_STATUS_TIMEOUT = 5
RECEIVER_PAGE_TIMEOUT = 10
# Processes of the Python receiver standing in for nginx.
FALLBACK_PROCESSES = 4

NGINX_CONF = """
worker_processes 1;
daemon off;
{user}
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    client_body_buffer_size 1m;
    keepalive_timeout 300s;
    keepalive_requests 10000000;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        {status}
        location / {{ return 200 'ok'; }}
    }}
}}
"""


def start_nginx(state: State) -> None:
    binary = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    port = harness.free_port()
    if binary is None:
        out(f"receiver: nginx not installed; using the multi-process Python receiver ({FALLBACK_PROCESSES} processes)")
        state.nginx = Proc(
            "receiver-throughput",
            [sys.executable, "bench/receiver.py", str(port), "--processes", str(FALLBACK_PROCESSES)],
            dict(os.environ),
        )
        harness.wait_for_port(port)
        state.nginx_port = port
        return
    tmp = RESULTS / "nginx"
    tmp.mkdir(parents=True, exist_ok=True)
    user = "user root;" if os.geteuid() == 0 else ""
    # With the status page (for counting requests) if this nginx has the module, else without.
    for status in ("location = /nginx_status { stub_status; }", ""):
        conf = tmp / "nginx.conf"
        conf.write_text(NGINX_CONF.format(user=user, tmp=tmp, port=port, status=status))
        test = subprocess.run([binary, "-t", "-p", str(tmp), "-c", str(conf)], capture_output=True, text=True)
        if test.returncode == 0:
            break
    else:
        raise RuntimeError(f"nginx config refused:\n{test.stderr}")
    state.nginx = Proc("nginx", [binary, "-p", str(tmp), "-c", str(conf)], dict(os.environ))
    harness.wait_for_port(port)
    state.nginx_port = port
    version = subprocess.run([binary, "-v"], capture_output=True, text=True).stderr.strip()
    out(f"receiver: {version}, 1 worker process, keep-alive, `return 200 'ok'` on 127.0.0.1:{port}")


def nginx_requests(state: State) -> int | None:
    """Requests nginx has served so far (None without its status page)."""
    try:
        url = f"http://127.0.0.1:{state.nginx_port}/nginx_status"
        with urllib.request.urlopen(url, timeout=NGINX_STATUS_TIMEOUT) as response:
            text = response.read().decode()
    except OSError:
        return None
    match = re.search(r"\n\s*(\d+)\s+(\d+)\s+(\d+)", text)
    return int(match.group(3)) if match else None


def nginx_pids(state: State) -> list[int]:
    assert state.nginx is not None
    return [state.nginx.pid, *harness.children_of(state.nginx.pid)]


def start_receiver(state: State) -> None:
    port = harness.free_port()
    state.receiver = Proc("receiver-latency", [sys.executable, "bench/receiver.py", str(port)], dict(os.environ))
    harness.wait_for_port(port)
    state.receiver_port = port


def receiver_get(state: State, path: str) -> Any:
    """A JSON page of the Python receiver: ``/arrivals`` or ``/counts``."""
    url = f"http://127.0.0.1:{state.receiver_port}{path}"
    with urllib.request.urlopen(url, timeout=RECEIVER_PAGE_TIMEOUT) as response:
        return json.loads(response.read())
