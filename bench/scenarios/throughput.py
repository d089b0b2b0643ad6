"""Throughput: events x webhooks over several organizations, emitted all at once from forked
producers; the time from the first emit until the last delivery is recorded as succeeded."""

from __future__ import annotations

import time

import harness
from common import (
    STALL_SECONDS,
    State,
    cpu_per_item,
    cpu_per_item_line,
    cpu_shares,
    figure,
    out,
    service_side_us,
)
from producers import EMITTERS, emit_in_parallel
from receivers import nginx_pids, nginx_requests
from service import REDIS_URL, broker_keys, consumers_of_our_db, make_org, redis_client
from workers import diagnose_stall, start_profilers, stop_profilers, worker_meter

THROUGHPUT_EVENTS = 2_000
THROUGHPUT_ORGS = 10
WEBHOOKS_PER_ORG = 5
TARGET = 1_000  # deliveries/s
# Deliveries a stalled run shows as examples.
STALLED_EXAMPLES = 5


def run(state: State) -> None:
    from django.db.models import Count

    from deliveries.models import Attempt, Delivery

    out()
    out(
        f"== 1. Throughput: {THROUGHPUT_EVENTS:,} events x {WEBHOOKS_PER_ORG} webhooks over {THROUGHPUT_ORGS} orgs"
        f" = {THROUGHPUT_EVENTS * WEBHOOKS_PER_ORG:,} deliveries =="
    )
    out("before it, " + harness.cpu_probe())
    orgs, webhook_ids = [], []
    for i in range(THROUGHPUT_ORGS):
        org, webhooks = make_org(
            f"bench-throughput-{i}",
            [f"http://127.0.0.1:{state.nginx_port}/o{i}/w{j}" for j in range(WEBHOOKS_PER_ORG)],
        )
        orgs.append(org)
        webhook_ids += [webhook.id for webhook in webhooks]
    org_ids = [org.id for org in orgs]
    expected = THROUGHPUT_EVENTS * WEBHOOKS_PER_ORG
    # By webhook: the history indexes lead with it (deliveries have no organization index).
    # emit() stores every delivery before it returns, so once emitting is over the run is done
    # when none is open; counting the open ones costs PostgreSQL less as the run nears its end.
    deliveries = Delivery.objects.filter(webhook_id__in=webhook_ids)
    still_open = deliveries.filter(status__in=Delivery.OPEN_STATUSES)
    requests_before = nginx_requests(state)
    profilers = start_profilers(state, "throughput") if state.profile else []
    meter = worker_meter(state, receiver=nginx_pids)
    meter.start()
    started, emitted = emit_in_parallel(org_ids, THROUGHPUT_EVENTS, EMITTERS)
    done = harness.wait_for_count(lambda: expected - still_open.count(), expected, stall_seconds=STALL_SECONDS)
    done = done and deliveries.filter(status=Delivery.Status.SUCCEEDED).count() == expected
    elapsed = time.time() - started
    used = meter.stop()
    stop_profilers(profilers)
    if not done:
        report_stall(org_ids, expected)
        diagnose_stall(state, "throughput")
        figure(state, "throughput (stalled run)", None, "deliveries/s", f">= {TARGET:,}/s", False)
        return
    rate = expected / elapsed
    state.throughput.append(rate)
    out(
        f"{expected:,} deliveries succeeded in {elapsed:.2f} s from the first emit = {rate:,.0f} deliveries/s"
        f" (emitting took {emitted:.2f} s, {EMITTERS} emitter processes)"
    )
    attempts = Attempt.objects.filter(delivery__organization_id__in=org_ids).count()
    by_status = dict(Delivery.objects.filter(organization_id__in=org_ids).values_list("status").annotate(n=Count("id")))
    requests_after = nginx_requests(state)
    posts = (
        # Less one: the status page's own request.
        f", receiver saw {requests_after - requests_before - 1:,} POSTs"
        if requests_before is not None and requests_after is not None
        else ""
    )
    out(f"  check: deliveries by status {by_status}, {attempts:,} attempt rows{posts}")
    out("  CPU during the run (% of one core; 2 cores = 200%): " + cpu_shares(used, elapsed))
    per = cpu_per_item(used, expected)
    out("  CPU per delivery: " + cpu_per_item_line(per))
    state.throughput_cpu_us.append(service_side_us(per))


def report_stall(org_ids: list[str], expected: int) -> None:
    """Where the deliveries of a stalled run were left: statuses, leases, the broker's queues."""
    from django.db.models import Count

    from deliveries.models import Delivery
    from events.models import Event

    rows = Delivery.objects.filter(organization_id__in=org_ids)
    by_status = dict(rows.values_list("status").annotate(n=Count("id")))
    leased = rows.filter(lease_until__isnull=False).count()

    client = redis_client()
    out(f"  STALLED: not all {expected:,} deliveries succeeded within the deadline.")
    out(f"  deliveries by status: {by_status}; with a lease set: {leased}")
    events = Event.objects.filter(organization_id__in=org_ids)
    out(
        f"  events: {events.count():,};"
        f" broker: {client.llen('webhooks')} messages queued, {client.hlen('unacked')} unacked,"
        f" {client.llen('ae.undeliver')} undeliverable; kombu keys: {broker_keys(client)}"
    )
    foreign = consumers_of_our_db(set())
    if foreign:
        out(f"  processes consuming from {REDIS_URL}: {foreign}")
    stuck = rows.exclude(status=Delivery.Status.SUCCEEDED).order_by("created_at")[:STALLED_EXAMPLES]
    for d in stuck:
        out(
            f"  e.g. {d.id} webhook {d.webhook_id} status {d.status} attempts {d.attempts}"
            f" next {d.next_attempt_at} lease {d.lease_until} error {d.last_error!r}"
        )
