"""End to end: the retry schedule, Retry-After, the total deadline and disabling, against real
receivers with a real worker (WEBHOOK_RETRY_DELAYS shortened to seconds)."""

from __future__ import annotations

import pytest
from conftest import make_webhook, wait_until

from deliveries.models import Attempt, Delivery
from events import services as events

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

MAX_ATTEMPTS = 6  # the first attempt and five retries


def _delivery_of(webhook) -> Delivery:
    return wait_until(lambda: Delivery.objects.filter(webhook=webhook).first(), message="no delivery created")


def _finished(delivery: Delivery) -> Delivery | None:
    delivery.refresh_from_db()
    return delivery if delivery.status in ("succeeded", "failed") else None


def test_deliveries_retry_until_success_or_six_attempts_when_receivers_fail(receiver, start_worker, tenant, api):
    answers = iter([503, 500])
    receiver.responses["/flaky"] = lambda _: (next(answers, 200), {}, b"answer")
    receiver.responses["/error"] = 500
    receiver.responses["/redirect"] = lambda _: (302, {"Location": receiver.url("/target")}, b"")
    flaky = make_webhook(tenant.organization, receiver.url("/flaky")).webhook
    erroring = make_webhook(tenant.organization, receiver.url("/error")).webhook
    redirecting = make_webhook(tenant.organization, receiver.url("/redirect")).webhook
    start_worker(WEBHOOK_RETRY_DELAYS="1,1,1,1,1")

    events.emit(tenant.organization, "agent.online", {"agent_id": "agt_1"})

    # While a delivery waits for its next attempt, the history says when that is.
    def retrying_row() -> dict | None:
        rows = api.get(f"/ui/api/webhooks/{flaky.id}/deliveries").json()["results"]
        return rows[0] if rows and rows[0]["status"] == "retrying" else None

    waiting = wait_until(retrying_row, interval=0.02)
    assert waiting["next_attempt_at"] is not None
    assert waiting["next_attempt_at"] > waiting["last_attempt_at"]

    # Failing twice, then answering 200: succeeded on the third attempt.
    delivery = wait_until(lambda: _finished(_delivery_of(flaky)), timeout=15)
    assert delivery.status == "succeeded"
    assert delivery.attempts == 3
    assert delivery.next_attempt_at is None
    requests = receiver.received("/flaky")
    assert len(requests) == 3
    assert {r.headers["X-CyberCage-Delivery-ID"] for r in requests} == {delivery.id}
    assert len({r.body for r in requests}) == 1  # every attempt sends the same bytes
    log = list(Attempt.objects.filter(delivery=delivery).values_list("number", "response_status", "response_body"))
    assert log == [(1, 503, "answer"), (2, 500, "answer"), (3, 200, "answer")]

    # Failing every time (a redirect is a failure too): failed after the sixth attempt.
    for webhook, path, status in [(erroring, "/error", 500), (redirecting, "/redirect", 302)]:
        delivery = wait_until(lambda w=webhook: _finished(_delivery_of(w)), timeout=30, message=f"{path} not finished")
        assert delivery.status == "failed"
        assert delivery.attempts == MAX_ATTEMPTS
        assert delivery.next_attempt_at is None
        requests = receiver.received(path)
        assert len(requests) == MAX_ATTEMPTS
        assert {r.headers["X-CyberCage-Delivery-ID"] for r in requests} == {delivery.id}

        detail = api.get(f"/ui/api/webhooks/{webhook.id}/deliveries/{delivery.id}").json()
        assert detail["status"] == "failed"
        assert [a["number"] for a in detail["attempt_log"]] == list(range(1, MAX_ATTEMPTS + 1))
        assert {a["response_status"] for a in detail["attempt_log"]} == {status}
    # A redirect is an answer, never followed.
    assert receiver.received("/target") == []


def test_retry_after_delays_next_attempt_up_to_twice_the_schedule_when_throttled(receiver, start_worker, tenant):
    def throttle_once(retry_after: str):
        answers = iter([(429, {"Retry-After": retry_after}, b"slow down")])
        return lambda _: next(answers, (200, {}, b"ok"))

    receiver.responses["/asks-3s"] = throttle_once("3")
    receiver.responses["/asks-100s"] = throttle_once("100")
    make_webhook(tenant.organization, receiver.url("/asks-3s"))
    make_webhook(tenant.organization, receiver.url("/asks-100s"))
    start_worker(WEBHOOK_RETRY_DELAYS="2,2,2,2,2")

    events.emit(tenant.organization, "agent.online", {"agent_id": "agt_1"})
    first, second = receiver.wait_for(2, "/asks-3s", timeout=15)
    # Later than the scheduled 2 s, as asked.
    assert 3.0 <= second.at - first.at <= 4.5
    first, second = receiver.wait_for(2, "/asks-100s", timeout=15)
    # Asked for 100 s, capped at twice the scheduled delay.
    assert 4.0 <= second.at - first.at <= 5.5
    wait_until(lambda: Delivery.objects.filter(status="succeeded").count() == 2)


def test_attempt_stops_at_total_deadline_when_receiver_drips_its_answer(drip_server, start_worker, tenant):
    drip = drip_server(0.3)  # the whole answer would take about 25 s
    webhook = make_webhook(tenant.organization, drip.url()).webhook
    start_worker(WEBHOOK_TIMEOUT="2", WEBHOOK_RETRY_DELAYS="60,60,60,60,60")

    events.emit(tenant.organization, "agent.online", {"agent_id": "agt_1"})
    delivery = _delivery_of(webhook)
    attempt = wait_until(lambda: Attempt.objects.filter(delivery=delivery).first(), timeout=15)
    assert "timeout" in attempt.error
    assert 1900 <= attempt.duration_ms <= 3000
    delivery.refresh_from_db()
    assert delivery.status == "retrying"
    assert "timeout" in delivery.last_error


def test_due_retries_fail_unattempted_when_webhook_disabled_while_retrying(receiver, start_worker, tenant, api):
    receiver.responses["/down"] = 500
    webhook = make_webhook(tenant.organization, receiver.url("/down")).webhook
    start_worker(beat=True, WEBHOOK_RETRY_DELAYS="3,3,3,3,3")

    events.emit(tenant.organization, "agent.online", {"agent_id": "agt_1"})
    events.emit(tenant.organization, "agent.offline", {"agent_id": "agt_1"})
    wait_until(lambda: Delivery.objects.filter(webhook=webhook, status="retrying", attempts=1).count() == 2)
    response = api.patch(f"/ui/api/webhooks/{webhook.id}", {"enabled": False}, format="json")
    assert response.status_code == 200, response.content

    wait_until(lambda: not Delivery.objects.filter(webhook=webhook, status="retrying").exists(), timeout=15)
    for delivery in Delivery.objects.filter(webhook=webhook):
        assert delivery.status == "failed"
        assert delivery.last_error == Delivery.NOT_ATTEMPTED_DISABLED
        assert delivery.attempts == 1
        assert delivery.next_attempt_at is None
    assert len(receiver.received("/down")) == 2

    # Sending one again is refused while the webhook is disabled, and queues nothing ...
    first = Delivery.objects.filter(webhook=webhook).order_by("id").first()
    retry = f"/ui/api/webhooks/{webhook.id}/deliveries/{first.id}/retry"
    refused = api.post(retry)
    assert refused.status_code == 409, refused.content
    assert "Enable it first, then retry." in refused.json()["message"]
    # ... and, enabled again, goes out once more with the same delivery id.
    receiver.responses["/down"] = 200
    assert api.patch(f"/ui/api/webhooks/{webhook.id}", {"enabled": True}, format="json").status_code == 200
    assert api.post(retry).status_code == 202
    again = receiver.wait_for(3, "/down")[-1]
    assert again.headers["X-CyberCage-Delivery-ID"] == first.id
    wait_until(lambda: Delivery.objects.get(id=first.id).status == "succeeded")
    assert len(receiver.received("/down")) == 3
    assert Delivery.objects.get(id=first.id).attempts == 2
