"""What one drain costs its worker thread when it finds one delivery: the case of a webhook that
each event wakes anew (a quiet webhook always; a busy one whenever the pipeline keeps up with its
events). In process, workers stopped, against nginx: emit one event, then run its drain, many
times; the thread's CPU of each drain is split by part, each part timed while it runs.

The POST is what the floor pays too; the rest is the drain's fixed cost, which batching spreads
over many deliveries when a drain finds many.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

from common import State, figure, out
from service import DATA, make_org

DRAINS = 500
WARM_UP_DRAINS = 50
POST = "the POST (requests, the pinned connection, the capped read)"


def _parts() -> list[tuple[str, Any, str]]:
    from deliveries import concurrency, drain, http, leases, ratelimit

    # (label, module, attribute): what the drain calls through that module's attribute.
    return [
        (POST, http, "post"),
        ("signing (both schemes)", drain, "signed_headers"),
        ("PostgreSQL: read the webhook", drain, "_webhook_to_drain"),
        ("PostgreSQL: claim", leases, "claim"),
        ("PostgreSQL: record the attempt", leases, "record"),
        ("PostgreSQL: the final check for more due", leases, "any_due"),
        ("Redis: take the endpoint's and organization's slots", concurrency, "acquire_slots"),
        ("Redis: give the slots back, clear the wake flag", concurrency, "release_slots"),
        ("Redis: the rate-limit grant", ratelimit, "acquire"),
    ]


@contextlib.contextmanager
def _timed(parts: list[tuple[str, Any, str]], spent: Counter[str]) -> Iterator[None]:
    """Each part, while inside, adds the calling thread's CPU it took to ``spent[label]``."""
    originals = [(module, name, getattr(module, name)) for _, module, name in parts]

    def timing(label: str, function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.thread_time()
            try:
                return function(*args, **kwargs)
            finally:
                spent[label] += time.thread_time() - started

        return timed

    for (label, module, name), (_, _, function) in zip(parts, originals, strict=True):
        setattr(module, name, timing(label, function))
    try:
        yield
    finally:
        for module, name, function in originals:
            setattr(module, name, function)


def run(state: State) -> None:
    from deliveries import drain
    from events import emit

    out()
    out("== 9. One drain of one delivery, in process (workers stopped), against nginx ==")
    org, (webhook,) = make_org("bench-drain", [f"http://127.0.0.1:{state.nginx_port}/drain"])
    spent: Counter[str] = Counter()
    total = 0.0
    with _timed(_parts(), spent):
        for _ in range(WARM_UP_DRAINS):
            emit(org, "threat.detected", DATA)
            drain.webhook_drain(webhook_id=webhook.id)
        spent.clear()
        for _ in range(DRAINS):
            emit(org, "threat.detected", DATA)
            started = time.thread_time()
            outcome = drain.webhook_drain(webhook_id=webhook.id)
            total += time.thread_time() - started
            if outcome.sent != 1:
                out(f"  WARNING: a drain sent {outcome.sent}, not 1: {outcome}")
    per_drain = total / DRAINS * 1e6
    out(f"{DRAINS:,} drains of one delivery each: {per_drain:,.0f} us of the worker thread's CPU a drain")
    for label, seconds in spent.most_common():
        out(f"  {label}: {seconds / DRAINS * 1e6:,.0f} us")
    rest = total - sum(spent.values())
    out(f"  the rest (the drain's own code, Django's connection handling): {rest / DRAINS * 1e6:,.0f} us")
    post = spent[POST] / DRAINS * 1e6
    out(
        "  (the worker's side only: PostgreSQL's and Redis's own CPU, and Celery's message to and"
        " from the broker, come on top)"
    )
    figure(state, "one drain of one delivery, thread CPU", per_drain, "us", "(info)", None)
    figure(state, "  of which around the POST", per_drain - post, "us", "(info)", None)
