"""The cluster demonstration's receiver: bench/receiver.py's keep-alive handler, on the bridge
address, recording which host sent each request and when.

* Every POST is answered ``200 ok`` and logged: its path, the sending host's address, the
  ``X-CyberCage-Delivery-ID``, the ``X-CyberCage-Timestamp`` (the sent-at stamp, taken by the
  worker right after its rate-limit grant), the envelope's event id and the arrival time
  (``time.time()``; the hosts are namespaces of this machine, so they share its clock).
* A POST to ``/slow/<ms>/...`` is answered after ``<ms>`` milliseconds. Requests open at once
  are counted per path: the most seen, and which hosts held them at that moment.
* ``GET /log?prefix=/rate/`` returns ``{"requests": [[path, host, delivery_id, sent_at,
  event_id, arrived], ...]}`` for the paths starting with the prefix; ``GET /count?prefix=``
  only ``{"total": n, "by_host": {host: n}, "last_by_host": {host: last arrival}}``;
  ``GET /open`` the requests open at once per path: ``{"most": {path: n}, "hosts_at_most":
  {path: [host, ...]}, "most_hosts": {path: n}, "open": {path: n}}`` (``most_hosts``: the
  most distinct hosts with one open at once).

Run: ``python bench/cluster_receiver.py ADDRESS PORT``.
"""

from __future__ import annotations

import contextlib
import json
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from urllib.parse import parse_qs, urlparse

sys.path.insert(0, str(Path(__file__).resolve().parent))

import receiver  # noqa: E402 - bench/receiver.py

SLOW_PREFIX = "/slow/"

_lock = threading.Lock()
_log: list[list[object]] = []
_open: Counter[str] = Counter()
_open_hosts: dict[str, Counter[str]] = {}
_most: Counter[str] = Counter()
_hosts_at_most: dict[str, list[str]] = {}
# The most distinct hosts with a request open at once, per path.
_most_hosts: Counter[str] = Counter()


def _slow_seconds(path: str) -> float:
    if not path.startswith(SLOW_PREFIX):
        return 0.0
    with contextlib.suppress(ValueError, IndexError):
        return int(path[len(SLOW_PREFIX) :].split("/", 1)[0]) / 1000
    return 0.0


class Handler(receiver.Handler):
    def do_POST(self) -> None:  # noqa: N802 - the http.server naming
        arrived = time.time()
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        host = self.client_address[0]
        event_id = None
        with contextlib.suppress(ValueError, AttributeError):
            event_id = json.loads(body).get("id")
        path = self.path
        with _lock:
            _log.append(
                [
                    path,
                    host,
                    self.headers.get("X-CyberCage-Delivery-ID"),
                    self.headers.get("X-CyberCage-Timestamp"),
                    event_id,
                    arrived,
                ]
            )
            _open[path] += 1
            _open_hosts.setdefault(path, Counter())[host] += 1
            hosts_open = sorted(h for h, n in _open_hosts[path].items() if n)
            if _open[path] > _most[path]:
                _most[path] = _open[path]
                _hosts_at_most[path] = hosts_open
            _most_hosts[path] = max(_most_hosts[path], len(hosts_open))
        try:
            delay = _slow_seconds(path)
            if delay:
                time.sleep(delay)
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")
        finally:
            with _lock:
                _open[path] -= 1
                _open_hosts[path][host] -= 1

    def do_GET(self) -> None:  # noqa: N802
        url = urlparse(self.path)
        with _lock:
            prefix = parse_qs(url.query).get("prefix", [""])[0]
            if url.path == "/open":
                payload = {
                    "most": dict(_most),
                    "hosts_at_most": _hosts_at_most,
                    "most_hosts": dict(_most_hosts),
                    "open": dict(_open),
                }
            elif url.path == "/count":
                rows = [row for row in _log if str(row[0]).startswith(prefix)]
                by_host = Counter(str(row[1]) for row in rows)
                last = {str(row[1]): row[5] for row in rows}
                payload = {"total": len(rows), "by_host": dict(by_host), "last_by_host": last}
            else:
                payload = {"requests": [row for row in _log if str(row[0]).startswith(prefix)]}
            data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def main() -> None:
    address, port = sys.argv[1], int(sys.argv[2])
    server = receiver.Server((address, port), Handler)
    print(f"cluster receiver listening on {address}:{port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
