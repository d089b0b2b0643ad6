"""``python manage.py webhook_listen --port 3000 --secret whsec_…``: a local receiver for development.

Point a webhook at it (through a tunnel such as ngrok, or directly with loopback allowed in
WEBHOOK_ALLOWED_NETWORKS); every delivery is verified with ``deliveries.verify`` (both
signature schemes; the Standard Webhooks headers and a fresh timestamp are required unless
``--documented-only``) and printed. It answers 200 when the delivery verifies, 400 when not.
``--secret`` may be repeated: through a rotation, give it the old secret and the new one.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from deliveries.verify import DEFAULT_TOLERANCE_SECONDS, VerificationError, verify
from events.encoding import pretty

# Larger bodies than the service ever sends (1 MB payload plus the envelope) are refused unread.
MAX_BODY_BYTES = 2 * 1024 * 1024


class Command(BaseCommand):
    help = "Run a local webhook receiver that verifies and prints every delivery."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--port", type=int, default=3000, help="port to listen on (0: any free port)")
        parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
        parser.add_argument(
            "--secret",
            action="append",
            required=True,
            help="a signing secret of the webhook; repeat it to accept several (old and new, through a rotation)",
        )
        parser.add_argument(
            "--tolerance",
            type=int,
            default=DEFAULT_TOLERANCE_SECONDS,
            help="seconds a webhook-timestamp may differ from now",
        )
        parser.add_argument(
            "--documented-only",
            action="store_true",
            help="also accept deliveries signed with X-CyberCage-Signature alone (no timestamp: replayable)",
        )

    def handle(
        self,
        *args: Any,
        port: int,
        host: str,
        secret: list[str],
        tolerance: int,
        documented_only: bool,
        **options: Any,
    ) -> None:
        # Long only by its request handler, a class that closes over the options given here.
        lock = threading.Lock()
        command = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # our own lines replace the access log
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                try:
                    length = int(self.headers.get("Content-Length") or 0)
                except ValueError:
                    length = -1
                if length < 0 or length > MAX_BODY_BYTES:
                    self._answer(413 if length > 0 else 400, "bad or missing Content-Length")
                    return
                body = self.rfile.read(length)
                headers = dict(self.headers.items())
                event_type = self.headers.get("X-CyberCage-Event", "?")
                delivery_id = self.headers.get("X-CyberCage-Delivery-ID") or self.headers.get("webhook-id") or "?"
                try:
                    payload = verify(body, headers, secret, tolerance=tolerance, allow_documented_only=documented_only)
                except VerificationError as exc:
                    with lock:
                        command.stdout.write(f"{event_type} {delivery_id} INVALID: {exc}")
                        command.stdout.flush()
                    self._answer(400, f"invalid: {exc}")
                    return
                with lock:
                    command.stdout.write(f"{event_type} {delivery_id} verified")
                    command.stdout.write(pretty(payload))
                    command.stdout.flush()
                self._answer(200, "ok")

            def _answer(self, status: int, text: str) -> None:
                data = (text + "\n").encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        try:
            server = ThreadingHTTPServer((host, port), Handler)
        except OSError as exc:
            raise CommandError(f"cannot listen on {host}:{port}: {exc}") from exc
        server.daemon_threads = True
        bound_port = server.server_address[1]
        self.stdout.write(f"Listening on http://{host}:{bound_port}/ (any path); Ctrl-C to stop.")
        self.stdout.flush()
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
