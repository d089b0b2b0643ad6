"""History at scale: ten million deliveries over 30 daily partitions bulk-loaded
(bench/history_data.py), then the history pages and the stats timed through the API, with the
EXPLAIN plans of every query they ran (which partitions each scanned), and retention dropping a
day of a million deliveries."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from typing import Any

from common import State, figure, out
from harness import percentile
from service import make_org

HISTORY_EVENTS = int(os.environ.get("BENCH_HISTORY_EVENTS", "1000000"))
# Events (x HISTORY_WEBHOOKS deliveries) of the one day past retention that the drop removes.
EXPIRED_EVENTS = int(os.environ.get("BENCH_HISTORY_EXPIRED_EVENTS", "100000"))
HISTORY_WEBHOOKS = 10
HISTORY_DAYS = 30
HISTORY_REQUESTS = 200
# Targets (p95, ms): a history page, and the stats.
PAGE_TARGET_MS = 50
STATS_TARGET_MS = 200
# Target (ms): retention dropping a day (of EXPIRED_EVENTS x HISTORY_WEBHOOKS deliveries).
DROP_TARGET_MS = 1000
# Webhooks whose calls warm caches and connections before the timing.
WARM_UP_WEBHOOKS = 3
# Tables whose queries' plans are printed.
PLANNED_TABLES = ("deliveries_delivery", "deliveries_attempt")
SCAN_PATTERN = r"(?:Index Only Scan|Index Scan|Bitmap Index Scan)(?: Backward)? (?:using|on) (\w+)"
# A partition named in a plan: pg_partman's <table>_pYYYY_MM_DD, or the default one.
PARTITION_PATTERN = r"\b((?:deliveries_delivery|deliveries_attempt|events_event)_(?:p\d{4}_\d{2}_\d{2}|default))\b"


def run(state: State) -> None:
    import history_data
    from django.test import Client

    from webhooks import services as webhook_services

    out()
    from django.conf import settings

    rows = HISTORY_EVENTS * HISTORY_WEBHOOKS
    out(f"== 6. History at scale: {rows:,} deliveries over {HISTORY_WEBHOOKS} webhooks and {HISTORY_DAYS} days ==")
    org, webhooks = make_org("bench-history", [f"http://127.0.0.1:9/h{i}" for i in range(HISTORY_WEBHOOKS)])
    _, key = webhook_services.api_key_create(organization=org)
    started = time.perf_counter()
    counts = history_data.load(
        org_id=org.id,
        webhook_ids=[w.id for w in webhooks],
        events=HISTORY_EVENTS,
        days=HISTORY_DAYS,
        expired_events=EXPIRED_EVENTS,
        retention_days=settings.WEBHOOK_RETENTION_DAYS,
    )
    out(
        f"loaded {counts['events_event']:,} events, {counts['deliveries_delivery']:,} deliveries,"
        f" {counts['deliveries_attempt']:,} attempts in {time.perf_counter() - started:.1f} s (partitions"
        f" {counts['partition seconds']:.0f} s, INSERT ... SELECT {counts['insert seconds']:.0f} s,"
        f" index builds {counts['index seconds']:.0f} s, VACUUM ANALYZE {counts['vacuum seconds']:.0f} s),"
        f" of which {EXPIRED_EVENTS * HISTORY_WEBHOOKS:,} deliveries in one day past retention"
    )
    out("daily partitions: " + ", ".join(f"{t} {partition_count(t)}" for t in history_data.TABLES))
    client = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
    cases = history_cases(client, webhooks)
    out(f"p95 over {HISTORY_REQUESTS} requests each (Django test client, in process: full middleware, no network):")
    plans = time_cases(state, cases, webhooks, rows)
    out()
    out("EXPLAIN (ANALYZE, BUFFERS) of every delivery/attempt query those calls ran:")
    print_plans(plans)
    out()
    time_drop(state)


def partition_count(table: str) -> int:
    from deliveries.partitions import partitions_of

    return len(partitions_of(table))


def time_drop(state: State) -> None:
    """Retention as beat runs it: every day past WEBHOOK_RETENTION_DAYS dropped whole."""
    from django.conf import settings
    from django.db import connection

    from deliveries.partitions import partitions_drop_expired

    day = EXPIRED_EVENTS * HISTORY_WEBHOOKS
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM deliveries_delivery WHERE id LIKE 'dlv_x%%'")
        expired = cursor.fetchone()[0]
    t0 = time.perf_counter()
    dropped = partitions_drop_expired()
    elapsed_ms = (time.perf_counter() - t0) * 1000
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM deliveries_delivery WHERE id LIKE 'dlv_x%%'")
        left = cursor.fetchone()[0]
    out(
        f"retention ({settings.WEBHOOK_RETENTION_DAYS} days): {dropped} partitions dropped (a day of {expired:,}"
        f" deliveries, its events and attempts) in {elapsed_ms:.0f} ms; {left} of those deliveries left"
    )
    figure(state, f"drop a day of {day / 1e6:g}M deliveries", elapsed_ms, "ms", f"< {DROP_TARGET_MS} ms",
           elapsed_ms < DROP_TARGET_MS and left == 0 and expired == day)  # fmt: skip


Case = tuple[str, str, Callable[[Any], None], int]


def history_cases(client: Any, webhooks: list[Any]) -> list[Case]:
    """(figure name, label, call(webhook), target ms) of each timed request."""
    from datetime import timedelta

    stats_path = f"/ui/api/webhooks/{webhooks[0].id}/stats?window=24h"
    stats_over_http = client.get(stats_path).status_code == 200
    first_page = client.get(f"/ui/api/webhooks/{webhooks[0].id}/deliveries").json()
    next_link = first_page.get("next")
    next_query = next_link.split("?", 1)[1] if next_link else ""

    def http_get(path: str) -> Callable[[Any], None]:
        def call(webhook: Any) -> None:
            response = client.get(path.format(id=webhook.id))
            assert response.status_code == 200, (path, response.status_code, response.content[:300])

        return call

    def direct_stats(webhook: Any) -> None:
        from deliveries import selectors

        selectors.webhook_stats(webhook, window=timedelta(hours=24))

    cases: list[Case] = [
        (
            "history page",
            "GET /ui/api/webhooks/{id}/deliveries",
            http_get("/ui/api/webhooks/{id}/deliveries"),
            PAGE_TARGET_MS,
        ),
        (
            "history ?status=failed",
            "GET /ui/api/webhooks/{id}/deliveries?status=failed",
            http_get("/ui/api/webhooks/{id}/deliveries?status=failed"),
            PAGE_TARGET_MS,
        ),
    ]
    if next_query:
        cases.append(
            (
                "history page 2 (cursor)",
                "GET /ui/api/webhooks/{id}/deliveries?cursor=... (webhook 0's next link)",
                lambda _w: http_get("/ui/api/webhooks/{id}/deliveries?" + next_query)(webhooks[0]),
                PAGE_TARGET_MS,
            )
        )
    if stats_over_http:
        cases.append(
            (
                "stats 24h",
                "GET /ui/api/webhooks/{id}/stats?window=24h",
                http_get(stats_path.replace(webhooks[0].id, "{id}")),
                STATS_TARGET_MS,
            )
        )
    else:
        out("  (GET .../stats answered non-200: timing deliveries.selectors.webhook_stats directly instead)")
        cases.append(
            ("stats 24h", "deliveries.selectors.webhook_stats(window=24h), in process", direct_stats, STATS_TARGET_MS)
        )
    return cases


def time_cases(state: State, cases: list[Case], webhooks: list[Any], rows: int) -> list[tuple[str, str]]:
    """Time each case over the webhooks in turn; return (label, SQL) of the queries to explain."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    plans: list[tuple[str, str]] = []
    for name, label, call, target_ms in cases:
        for webhook in webhooks[:WARM_UP_WEBHOOKS]:
            call(webhook)
        timings = []
        for i in range(HISTORY_REQUESTS):
            t0 = time.perf_counter()
            call(webhooks[i % len(webhooks)])
            timings.append((time.perf_counter() - t0) * 1000)
        p50, p95 = percentile(timings, 50), percentile(timings, 95)
        out(f"  {label}: p50 {p50:.1f} ms, p95 {p95:.1f} ms, max {max(timings):.1f} ms")
        figure(state, f"{name} p95 @{rows / 1e6:g}M rows", p95, "ms", f"< {target_ms} ms", p95 < target_ms)
        with CaptureQueriesContext(connection) as captured:
            call(webhooks[1])
        for query in captured.captured_queries:
            sql = query["sql"]
            if any(table in sql for table in PLANNED_TABLES) and sql.lstrip().upper().startswith("SELECT"):
                plans.append((label, sql))
    return plans


def pruning(plan: list[str]) -> str:
    """Per table, how many of its partitions the plan read, and how many were pruned: by the
    planner (absent from the plan) or at run time (in it, never executed)."""
    from deliveries.partitions import partitions_of

    read: dict[str, set[str]] = {}
    listed: dict[str, set[str]] = {}
    for line in plan:
        for name in re.findall(r" on " + PARTITION_PATTERN, line):
            table = re.sub(r"_(?:p\d{4}_\d{2}_\d{2}|default)$", "", name)
            listed.setdefault(table, set()).add(name)
            if "never executed" not in line:
                read.setdefault(table, set()).add(name)
    parts = []
    for table in sorted(listed):
        total = len(partitions_of(table)) + 1  # and the default one
        got = read.get(table, set())
        parts.append(
            f"{table} {len(got)} of {total} read ({total - len(listed[table])} pruned when planned,"
            f" {len(listed[table]) - len(got)} at run time)" + (f": {', '.join(sorted(got))}" if len(got) <= 3 else "")
        )
    return "; ".join(parts) or "none"


def _parent_index(name: str) -> str:
    """A partition's index named for the parent's (PostgreSQL names them <partition>_<columns>_idx)."""
    return re.sub(r"_p\d{4}_\d{2}_\d{2}_", "_<day>_", name)


def print_plans(plans: list[tuple[str, str]]) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        for label, sql in plans:
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql)
            plan = [line for (line,) in cursor.fetchall()]
            text = "\n".join(plan)
            scans = sorted({_parent_index(name) for name in re.findall(SCAN_PATTERN, text)})
            seq = sorted(set(re.findall(r"Seq Scan on (\w+)", text)))
            out(f"-- {label}: indexes used {scans or 'none'}" + (f"; SEQUENTIAL SCAN of {seq}" if seq else ""))
            out(f"   partitions: {pruning(plan)}")
            out(f"   {sql}")
            for line in plan:
                out(f"   {line}")
