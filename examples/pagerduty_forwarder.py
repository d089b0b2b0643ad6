"""Open a PagerDuty incident for every CyberCage ``threat.detected`` webhook of severity critical.

Standalone: Python 3.10+ standard library only. Run it, then point a CyberCage webhook at it:

    WEBHOOK_SECRET=whsec_... PAGERDUTY_ROUTING_KEY=... python examples/pagerduty_forwarder.py

Only critical threats page, and the webhook's filter says so, so CyberCage sends nothing else:

    curl -X POST https://…/ui/api/webhooks -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
      -d '{"url": "https://forwarder.example/webhook", "events": ["threat.detected"], "secret": "whsec_...",
           "filter": {"data.severity": "critical"}}'

Environment: WEBHOOK_SECRET (the webhook's signing secret; through a rotation, the new one, with
the old one in WEBHOOK_PREVIOUS_SECRET until the switch), PAGERDUTY_ROUTING_KEY (an Events
API v2 integration key), PAGERDUTY_EVENTS_URL (default https://events.pagerduty.com/v2/enqueue),
PORT (default 3000; 0 picks a free port), HOST (default 127.0.0.1).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sys
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# Through a rotation: the new secret, and the old one until the switch (X-CyberCage-Signature
# is signed with the old one until then, with the new one after).
SECRETS = [secret for secret in (os.environ["WEBHOOK_SECRET"], os.environ.get("WEBHOOK_PREVIOUS_SECRET")) if secret]
PAGERDUTY_ROUTING_KEY = os.environ.get("PAGERDUTY_ROUTING_KEY", "")
PAGERDUTY_EVENTS_URL = os.environ.get("PAGERDUTY_EVENTS_URL", "https://events.pagerduty.com/v2/enqueue")
# CyberCage payloads are at most 1 MB; anything much larger is not a delivery.
MAX_BODY_BYTES = 2 * 1024 * 1024
FORWARD_TIMEOUT_SECONDS = 10


def signature_is_valid(raw_body: bytes, signature: str, secrets: list[str]) -> bool:
    """X-CyberCage-Signature is ``sha256=`` + hex HMAC-SHA256 of the RAW body, keyed with the secret:
    valid if it is that of any of ``secrets``.

    Hash the bytes exactly as received: re-serialized JSON may differ from what was signed.
    """
    given = signature.strip().encode("utf-8")
    expected = ["sha256=" + hmac.new(s.encode("utf-8"), raw_body, hashlib.sha256).hexdigest() for s in secrets]
    return any([hmac.compare_digest(given, e.encode("ascii")) for e in expected])


def pagerduty_event(event: dict) -> dict | None:
    """The PagerDuty Events API v2 body for an event, or None when no incident is due.

    The webhook's filter already keeps everything but critical threats away; the check stays
    because test events (the dashboard's "Send test event") are sent whatever the filter says.
    """
    data = event.get("data", {})
    if event.get("event") != "threat.detected" or data.get("severity") != "critical":
        return None
    return {
        "routing_key": PAGERDUTY_ROUTING_KEY,
        "event_action": "trigger",
        # One incident per threat, however often the delivery is retried.
        "dedup_key": data.get("threat_id") or event.get("id"),
        "payload": {
            "summary": f"Critical threat: {data.get('description')}",
            "severity": "critical",
            "source": "cybercage",
            "custom_details": data,
        },
    }


def post_json(url: str, body: dict) -> None:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode("utf-8"), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=FORWARD_TIMEOUT_SECONDS) as response:
        response.read()


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
        incident = pagerduty_event(event)
        if incident is None:
            return self.answer(200, "OK")
        delivery_id = self.headers.get("X-CyberCage-Delivery-ID", "")
        try:
            post_json(PAGERDUTY_EVENTS_URL, incident)
        except OSError as exc:
            print(f"triggering PagerDuty for {delivery_id} failed: {exc}", file=sys.stderr, flush=True)
            return self.answer(502, "PagerDuty unavailable")  # CyberCage retries the delivery
        print(f"triggered PagerDuty for {delivery_id} ({incident['dedup_key']})", flush=True)
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
