"""Forward CyberCage ``threat.detected`` webhooks to a Slack channel.

Standalone: Python 3.10+ standard library only. Run it, then point a CyberCage webhook at it:

    WEBHOOK_SECRET=whsec_... SLACK_WEBHOOK_URL=https://hooks.slack.com/services/... \
        python examples/slack_forwarder.py

The channel gets every threat of medium severity and above: that is the webhook's filter, so
CyberCage sends nothing else (low-severity noise never leaves it):

    curl -X POST https://…/ui/api/webhooks -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
      -d '{"url": "https://forwarder.example/webhook", "events": ["threat.detected"], "secret": "whsec_...",
           "filter": {"data.severity": {"$in": ["medium", "high", "critical"]}}}'

Environment: WEBHOOK_SECRET (the webhook's signing secret; through a rotation, the new one, with
the old one in WEBHOOK_PREVIOUS_SECRET until the switch), SLACK_WEBHOOK_URL (a Slack incoming
webhook), PORT (default 3000; 0 picks a free port), HOST (default 127.0.0.1).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sys
import threading
import urllib.request
from collections import OrderedDict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# Through a rotation: the new secret, and the old one until the switch (X-CyberCage-Signature
# is signed with the old one until then, with the new one after).
SECRETS = [secret for secret in (os.environ["WEBHOOK_SECRET"], os.environ.get("WEBHOOK_PREVIOUS_SECRET")) if secret]
SLACK_WEBHOOK_URL = os.environ["SLACK_WEBHOOK_URL"]
# CyberCage payloads are at most 1 MB; anything much larger is not a delivery.
MAX_BODY_BYTES = 2 * 1024 * 1024
FORWARD_TIMEOUT_SECONDS = 10
# Deliveries are retried until they get a 2xx, so the same delivery id can arrive twice.
SEEN_LIMIT = 10_000


def signature_is_valid(raw_body: bytes, signature: str, secrets: list[str]) -> bool:
    """X-CyberCage-Signature is ``sha256=`` + hex HMAC-SHA256 of the RAW body, keyed with the secret:
    valid if it is that of any of ``secrets``.

    Hash the bytes exactly as received: re-serialized JSON may differ from what was signed.
    """
    given = signature.strip().encode("utf-8")
    expected = ["sha256=" + hmac.new(s.encode("utf-8"), raw_body, hashlib.sha256).hexdigest() for s in secrets]
    return any([hmac.compare_digest(given, e.encode("ascii")) for e in expected])


def slack_message(event: dict) -> dict | None:
    """The Slack message for an event, or None for events not forwarded (test events of other
    types: they are sent whatever the webhook's filter says)."""
    if event.get("event") != "threat.detected":
        return None
    data = event.get("data", {})
    agent = data.get("agent") or {}
    summary = f"*Severity:* {data.get('severity')}\n*Type:* {data.get('type')}\n*User:* {agent.get('user')}"
    return {
        "text": "🚨 Threat Detected",
        "blocks": [
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": summary},
            }
        ],
    }


def post_json(url: str, body: dict) -> None:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode("utf-8"), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=FORWARD_TIMEOUT_SECONDS) as response:
        response.read()


_seen: OrderedDict[str, None] = OrderedDict()
_seen_lock = threading.Lock()


def first_time(delivery_id: str) -> bool:
    with _seen_lock:
        if delivery_id in _seen:
            return False
        _seen[delivery_id] = None
        if len(_seen) > SEEN_LIMIT:
            _seen.popitem(last=False)
        return True


def forget(delivery_id: str) -> None:
    with _seen_lock:
        _seen.pop(delivery_id, None)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        if not 0 < length <= MAX_BODY_BYTES:
            return self.answer(400, "a body with a Content-Length is required")
        raw_body = self.rfile.read(length)
        if not signature_is_valid(raw_body, self.headers.get("X-CyberCage-Signature", ""), SECRETS):
            return self.answer(401, "invalid signature")
        try:
            event = json.loads(raw_body)  # parse only after the raw bytes are verified
        except ValueError:
            return self.answer(400, "body is not JSON")
        message = slack_message(event)
        delivery_id = self.headers.get("X-CyberCage-Delivery-ID", "")
        if message is None or not first_time(delivery_id):
            return self.answer(200, "OK")
        try:
            post_json(SLACK_WEBHOOK_URL, message)
        except OSError as exc:
            forget(delivery_id)  # let CyberCage's retry try again
            print(f"forwarding {delivery_id} to Slack failed: {exc}", file=sys.stderr, flush=True)
            return self.answer(502, "Slack unavailable")
        print(f"forwarded {delivery_id} ({event['event']}) to Slack", flush=True)
        return self.answer(200, "OK")

    def answer(self, status: int, text: str) -> None:
        body = text.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main() -> None:
    host, port = os.environ.get("HOST", "127.0.0.1"), int(os.environ.get("PORT", "3000"))
    server = ThreadingHTTPServer((host, port), Handler)
    print(f"listening on http://{host}:{server.server_port}/webhook", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
