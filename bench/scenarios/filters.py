"""What payload filters cost emit(): one organization with 50 webhooks without filters, another
with 50 filtered webhooks whose filters all match (so both insert 50 deliveries per event and
only the filters' evaluation differs), emitting interleaved one by one (workers stopped). The
figure is the filtered emit's median time over the unfiltered one's, median over the rounds; a
third organization whose filters skip half its webhooks is shown for information, and the
fan-out's SELECT alone shows what the filters cost PostgreSQL."""

from __future__ import annotations

import statistics
import time
from typing import Any

import harness
from common import State, figure, out
from service import DATA, redis_client

WEBHOOKS = 50
ROUNDS = 7
# Emits of each kind per round, interleaved one by one (none, all, half, none, ...): a machine
# whose speed drifts, or another process's burst, lands on all three alike.
ROUND_EMITS = 150
WARM_UP_EMITS = 30
TARGET_RATIO = 1.2


def _filter(i: int, *, matching: bool) -> dict[str, Any]:
    """A filter of the kind the README shows (type, severities, a nested field, a negation), with
    a literal of its own per webhook; ``matching`` says whether it holds for the bench's DATA
    (a "high" threat.detected from host john-laptop)."""
    severities = ["high", "critical"] if matching else ["critical"]
    return {
        "event": "threat.detected",
        "data.severity": {"$in": severities},
        "data.details.blocked": {"$exists": True},
        "$not": {"data.agent.hostname": {"$startsWith": f"test-{i}-"}},
    }


def _org(name: str, filters: list[dict[str, Any] | None]) -> Any:
    from webhooks import services as webhook_services

    org = webhook_services.organization_create(name=name)
    for i, filter_ in enumerate(filters):
        webhook_services.webhook_create(
            organization=org, url=f"http://127.0.0.1:9/filters/{name}/{i}", events=["*"], filter=filter_
        )
    return org


def run(state: State) -> None:
    from deliveries.models import Delivery
    from events import emit
    from events.models import Event

    out()
    out("== Filters: emit() to 50 webhooks, filtered and not (workers stopped) ==")
    out(harness.cpu_probe())
    plain = _org("bench-filters-none", [None] * WEBHOOKS)
    filtered = _org("bench-filters-all-match", [_filter(i, matching=True) for i in range(WEBHOOKS)])
    half = _org("bench-filters-half-match", [_filter(i, matching=i % 2 == 0) for i in range(WEBHOOKS)])
    for org in (plain, filtered, half):
        for _ in range(WARM_UP_EMITS):
            emit(org, "threat.detected", DATA)
    kinds = {"none": plain, "all": filtered, "half": half}
    medians: dict[str, list[float]] = {name: [] for name in kinds}
    ratios = []
    for _ in range(ROUNDS):
        spent: dict[str, list[float]] = {name: [] for name in kinds}
        for i in range(ROUND_EMITS):
            order = list(kinds.items())
            for name, org in order[i % 3 :] + order[: i % 3]:  # each kind first in turn
                started = time.perf_counter()
                emit(org, "threat.detected", DATA)
                spent[name].append(time.perf_counter() - started)
        for name in kinds:
            medians[name].append(statistics.median(spent[name]))
        ratios.append(medians["all"][-1] / medians["none"][-1])
        redis_client().flushdb()  # the wake-ups: no worker runs them
    times = medians
    per_event = {
        name: Delivery.objects.filter(organization_id=org.id).count()
        / Event.objects.filter(organization_id=org.id).count()
        for name, org in (("none", plain), ("all", filtered), ("half", half))
    }
    out(
        f"emit() to {WEBHOOKS} webhooks, {ROUNDS} rounds of {ROUND_EMITS} emits of each kind, interleaved;"
        f" the rounds' median emit: without filters, median {statistics.median(times['none']) * 1e6:,.0f} us per emit"
        f" ({', '.join(f'{t * 1e6:.0f}' for t in times['none'])});"
        f" with {WEBHOOKS} matching filters {statistics.median(times['all']) * 1e6:,.0f} us"
        f" ({', '.join(f'{t * 1e6:.0f}' for t in times['all'])});"
        f" deliveries per event: {per_event['none']:.0f} and {per_event['all']:.0f}"
    )
    out(
        f"  with filters that skip half the webhooks: {statistics.median(times['half']) * 1e6:,.0f} us per emit"
        f" ({', '.join(f'{t * 1e6:.0f}' for t in times['half'])}): {per_event['half']:.0f} deliveries per event"
    )
    ratio = statistics.median(ratios)
    each = ", ".join(f"{r:.3f}" for r in ratios)
    out(f"  ratio filtered / unfiltered, median of the rounds: {ratio:.3f} (each: {each})")
    selection_costs(plain, filtered)
    out(harness.cpu_probe())
    figure(state, "emit() with 50 filters / without", ratio, "x", "<= 1.2x", ratio <= TARGET_RATIO)


# Repetitions of the fan-out's SELECT alone, each statement in turn.
SELECT_REPEATS = 400


def selection_costs(plain: Any, filtered: Any) -> None:
    """The fan-out's choice of webhooks alone, as PostgreSQL runs it (no insert, no commit): the
    WHERE clause before filters existed, with FILTER_MATCHES_SQL for 50 webhooks without
    filters (the payload's jsonb cast is all it adds), and for 50 with filters that match."""
    from django.db import connection

    from deliveries.fanout import CANDIDATES_SQL, FILTER_MATCHES_SQL, SUBSCRIBED_SQL
    from events.services import build_event
    from webhooks.filters import filter_document

    document = filter_document(build_event(plain.id, "threat.detected", DATA).payload)
    before = (
        "SELECT count(*) FROM (VALUES (%s::text, %s::jsonb)) AS event (type, document)"
        f" JOIN webhooks_webhook AS webhook ON {CANDIDATES_SQL} AND {SUBSCRIBED_SQL}"
    )
    after = f"{before} AND {FILTER_MATCHES_SQL}"
    statements = {
        "before filters": (before, ["threat.detected", document, plain.id]),
        "no filters": (after, ["threat.detected", document, plain.id]),
        "50 filters": (after, ["threat.detected", document, filtered.id]),
    }
    spent: dict[str, list[float]] = {name: [] for name in statements}
    counts = {}
    with connection.cursor() as cursor:
        for _ in range(SELECT_REPEATS):
            for name, (sql, params) in statements.items():
                started = time.perf_counter()
                cursor.execute(sql, params)
                counts[name] = cursor.fetchone()[0]
                spent[name].append(time.perf_counter() - started)
    out(
        "  the fan-out's SELECT of webhooks alone, median of "
        f"{SELECT_REPEATS} alternating runs (a round trip included): "
        + ", ".join(f"{name} {statistics.median(t) * 1e6:.0f} us ({counts[name]} chosen)" for name, t in spent.items())
    )
