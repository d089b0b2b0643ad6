"""Isolation: a victim organization's latency while another organization's endpoints hang.

Three hostile shapes: one hanging endpoint with a backlog (the endpoint cap binds), then
ISOLATION_MANY_HANGING hanging webhooks of one organization, then the same with the quota
raised to ISOLATION_MOST_HANGING (the organization cap binds).
"""

from __future__ import annotations

import harness
from common import State, figure, out
from producers import latency_line, paced_latency
from receivers import receiver_get
from service import DATA, WEBHOOK_TIMEOUT, make_org

ISOLATION_RATE = 20.0
ISOLATION_SECONDS = 15.0
ISOLATION_HANGING = 50
# Hanging webhooks of one organization (the quota's default, then raised), with events each.
ISOLATION_MANY_HANGING = 40
ISOLATION_MOST_HANGING = 100
ISOLATION_EVENTS_EACH = 2
TARGET_P99_MS = 500
# Seconds for the first hanging request to be open, and how often to look.
HANG_TIMEOUT = 15
HANG_POLL_SECONDS = 0.1
# How often to look whether the hanging requests of a case have all been let go.
RELEASE_POLL_SECONDS = 0.2


def run(state: State) -> None:
    from django.conf import settings
    from django.db import connection
    from django.test.utils import override_settings

    from events import emit  # after django.setup(): run.py imports this module before it

    cases = [
        (1, ISOLATION_HANGING),
        (ISOLATION_MANY_HANGING, ISOLATION_EVENTS_EACH),
        (ISOLATION_MOST_HANGING, ISOLATION_EVENTS_EACH),
    ]
    for number, (webhooks, events) in enumerate(cases):
        out()
        out(
            f"== 4{'abc'[number]}. Isolation: one org has {webhooks} hanging endpoint(s) (WEBHOOK_TIMEOUT="
            f"{WEBHOOK_TIMEOUT} s) with {events} event(s) queued for each; another org at {ISOLATION_RATE:.0f}"
            f" ev/s for {ISOLATION_SECONDS:.0f} s =="
        )
        urls = [f"http://127.0.0.1:{state.receiver_port}/hang/{n}" for n in range(webhooks)]
        with override_settings(WEBHOOK_MAX_PER_ORGANIZATION=max(webhooks, settings.WEBHOOK_MAX_PER_ORGANIZATION)):
            hanging_org, _ = make_org(f"bench-hanging-{number}", urls)
        victim, _ = make_org(f"bench-victim-{number}", [f"http://127.0.0.1:{state.receiver_port}/iso/{number}"])
        for _ in range(events):
            emit(hanging_org, "threat.detected", DATA)
        harness.wait_until(
            lambda: receiver_get(state, "/counts")["hanging"] >= 1, timeout=HANG_TIMEOUT, interval=HANG_POLL_SECONDS
        )
        peak = [0]

        def sample(peak: list[int] = peak) -> None:
            peak[0] = max(peak[0], receiver_get(state, "/counts")["hanging"])

        stats = paced_latency(state, victim, ISOLATION_RATE, ISOLATION_SECONDS, on_tick=sample)
        out(f"victim org: {latency_line(stats)}")
        out(
            f"  hanging requests open at once (peak, sampled each second): {peak[0]}"
            f" (caps: WEBHOOK_ENDPOINT_CONCURRENCY={settings.WEBHOOK_ENDPOINT_CONCURRENCY} per endpoint,"
            f" WEBHOOK_ORG_CONCURRENCY={settings.WEBHOOK_ORG_CONCURRENCY} per organization)"
        )
        p99 = stats.get("p99")
        figure(
            state,
            f"isolation p99, {webhooks} hanging",
            p99,
            "ms",
            "< 500 ms",
            p99 is not None and p99 < TARGET_P99_MS and not stats["missing"],
        )
        # The hanging organization's leftovers must not weigh on the next case.
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE deliveries_delivery SET status = 'failed', next_attempt_at = NULL WHERE organization_id = %s",
                [hanging_org.id],
            )
        # A hanging request ends when its attempt times out; three timeouts leave room for
        # attempts that began just before the UPDATE.
        harness.wait_until(
            lambda: receiver_get(state, "/counts")["hanging"] == 0,
            timeout=3 * float(WEBHOOK_TIMEOUT),
            interval=RELEASE_POLL_SECONDS,
        )
