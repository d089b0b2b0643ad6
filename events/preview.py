"""What a page shows of an event's body: formatted for people, and cut short when it is long.

A page that holds a whole megabyte of JSON is slow to send and to draw (one delivery page was
7.5 million pixels wide); past ``limit`` bytes the page shows the formatted beginning and links
to the exact body instead (the delivery's payload route).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from events.encoding import pretty


@dataclass(frozen=True)
class Preview:
    text: str  # formatted for people: never what was sent or signed
    size: int  # bytes of the body that was sent
    truncated: bool


def payload_preview(payload: str, *, limit: int) -> Preview:
    """``payload`` (an event's body, as sent) formatted, and cut to ``limit`` bytes when the
    body is longer than that; a cut never splits a character."""
    size = len(payload.encode("utf-8"))
    text = pretty(json.loads(payload))
    if size <= limit:
        return Preview(text=text, size=size, truncated=False)
    cut = text.encode("utf-8")[:limit].decode("utf-8", errors="ignore")
    return Preview(text=cut, size=size, truncated=True)
