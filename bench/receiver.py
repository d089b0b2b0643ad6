"""A small keep-alive HTTP receiver for the benchmark.

* Every POST is answered ``200 ok`` and its arrival time (``time.time()``) is recorded under
  the event id found in the JSON body (the envelope's ``id``).
* A POST to a path starting with ``/hang/`` is read and never answered (until the receiver
  stops): an endpoint that accepts and hangs.
* ``GET /arrivals`` returns ``{"arrivals": {event_id: [t, ...]}, "hanging": n, "posts": n}``;
  ``GET /counts`` only the two counts.

Run: ``python bench/receiver.py PORT [--processes N]``. With several processes (SO_REUSEPORT)
it is the throughput receiver used when nginx is not installed; arrivals are then per process.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HANG_PREFIX = "/hang/"
# A hanging request is released after this long at most (the client gave up long before).
HANG_SECONDS = 600.0

_lock = threading.Lock()
_arrivals: dict[str, list[float]] = {}
_counts = {"posts": 0, "hanging": 0}
_stop = threading.Event()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # The status line, headers and body leave in one segment: with an unbuffered writer the
    # body is a second small write that Nagle holds until the client's delayed ACK (~40 ms),
    # which would put 40 ms into every latency measured here.
    wbufsize = 64 * 1024
    disable_nagle_algorithm = True

    def log_message(self, *_args: object) -> None:  # quiet: no line per request
        return

    def do_POST(self) -> None:  # noqa: N802 - the http.server naming
        arrived = time.time()
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.path.startswith(HANG_PREFIX):
            with _lock:
                _counts["hanging"] += 1
            try:
                self._hang_until_client_leaves()
            finally:
                with _lock:
                    _counts["hanging"] -= 1
            self.close_connection = True
            return
        event_id = None
        with contextlib.suppress(ValueError, AttributeError):
            event_id = json.loads(body).get("id")
        with _lock:
            _counts["posts"] += 1
            if event_id:
                _arrivals.setdefault(event_id, []).append(arrived)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def _hang_until_client_leaves(self) -> None:
        """Answer nothing; return when the client hangs up (its timeout), or at HANG_SECONDS."""
        deadline = time.monotonic() + HANG_SECONDS
        self.connection.settimeout(0.2)
        while not _stop.is_set() and time.monotonic() < deadline:
            try:
                if self.connection.recv(1, socket.MSG_PEEK) == b"":
                    return  # end of stream: the client gave up
                time.sleep(0.2)  # bytes we do not read (a pipelined request): keep hanging
            except TimeoutError:
                continue
            except OSError:
                return

    def do_GET(self) -> None:  # noqa: N802
        with _lock:
            if self.path.startswith("/counts"):
                payload = json.dumps(_counts).encode()
            else:
                payload = json.dumps({"arrivals": _arrivals, **_counts}).encode()
            if self.path.startswith("/arrivals/reset"):
                _arrivals.clear()
                _counts["posts"] = 0
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()


def serve(port: int) -> None:
    server = Server(("127.0.0.1", port), Handler)
    try:
        server.serve_forever()
    finally:
        _stop.set()


def main() -> None:
    port = int(sys.argv[1])
    processes = int(sys.argv[sys.argv.index("--processes") + 1]) if "--processes" in sys.argv else 1
    for _ in range(processes - 1):
        if os.fork() == 0:
            serve(port)
            return
    print(f"receiver listening on 127.0.0.1:{port} ({processes} process(es))", flush=True)
    serve(port)


if __name__ == "__main__":
    main()
