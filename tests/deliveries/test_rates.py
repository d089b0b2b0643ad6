"""deliveries.rates: the one definition of the success and failure rates and of their grade
(green from 99 %, amber below, red under 90 %), used by the API, the dashboard, the admin
and /metrics."""

from __future__ import annotations

import pytest

from deliveries.rates import PERCENT_PLACES, Grade, Rates, percent


@pytest.mark.parametrize(
    ("succeeded", "attempts", "grade"),
    [
        (100, 100, Grade.HEALTHY),
        (99, 100, Grade.HEALTHY),  # exactly 99 %: green
        (9899, 10000, Grade.DEGRADED),  # 98.99 %: amber
        (90, 100, Grade.DEGRADED),  # exactly 90 %: still amber
        (8999, 10000, Grade.FAILING),  # 89.99 %: red
        (0, 3, Grade.FAILING),
        (0, 0, None),  # nothing attempted: no colour
    ],
)
def test_grade_follows_the_thresholds_when_rates_are_at_their_edges(succeeded, attempts, grade):
    assert Rates(attempts=attempts, succeeded=succeeded).grade == grade


@pytest.mark.parametrize(
    ("succeeded", "attempts", "success", "failure"),
    [
        (2, 3, 0.6666, 0.3334),
        (9999, 10000, 0.9999, 0.0001),
        (99999, 100000, 0.9999, 0.0001),  # 99.999 % is never 100 %
        (1, 100000, 0.0, 1.0),
        (29, 100, 0.29, 0.71),  # exact, no float wobble (0.29 * 10000 is 2899.9999...)
        (5, 5, 1.0, 0.0),
    ],
)
def test_rates_round_towards_failure_when_not_exact(succeeded, attempts, success, failure):
    rates = Rates(attempts=attempts, succeeded=succeeded)

    assert rates.success_rate() == success
    assert rates.failure_rate() == failure


def test_rates_are_none_when_nothing_was_attempted():
    assert Rates().success_rate() is None
    assert Rates().failure_rate() is None
    assert percent(Rates().success_rate(PERCENT_PLACES)) == "—"


@pytest.mark.parametrize(
    ("succeeded", "attempts", "success", "failure"),
    [(2, 3, "66.6%", "33.4%"), (999, 1000, "99.9%", "0.1%"), (9999, 10000, "99.9%", "0.1%"), (4, 4, "100%", "0%")],
)
def test_percent_shows_a_tenth_of_a_percent_and_never_rounds_up_to_100(succeeded, attempts, success, failure):
    rates = Rates(attempts=attempts, succeeded=succeeded)

    assert percent(rates.success_rate(PERCENT_PLACES)) == success
    assert percent(rates.failure_rate(PERCENT_PLACES)) == failure


def test_rates_add_up_when_summed_over_groups():
    assert Rates(attempts=3, succeeded=1) + Rates(attempts=2, succeeded=2) == Rates(attempts=5, succeeded=3)
    assert Rates(attempts=5, succeeded=3).failed == 2
