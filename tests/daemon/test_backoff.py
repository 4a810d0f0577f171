"""Scheduling math: next_delay (backoff with jitter, cap 6 h) and initial_delay."""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st

from syncd.daemon import BACKOFF_CAP, JITTER, initial_delay, next_delay

MIN = dt.timedelta(minutes=1)
intervals = st.integers(min_value=0, max_value=3 * 24 * 60).map(lambda m: dt.timedelta(minutes=m))
failures = st.integers(min_value=0, max_value=10_000)


@given(failures, intervals, st.integers())
def test_never_above_cap_plus_jitter(n: int, interval: dt.timedelta, seed: int) -> None:
    delay = next_delay(n, interval, random.Random(seed))
    ceiling = max(BACKOFF_CAP, interval, MIN) * (1 + JITTER)
    assert dt.timedelta(0) < delay <= ceiling


@given(failures, intervals, st.integers())
def test_never_below_interval_minus_jitter(n: int, interval: dt.timedelta, seed: int) -> None:
    # a failing account is never retried more often than a healthy one syncs
    assert next_delay(n, interval, random.Random(seed)) >= max(interval, MIN) * (1 - JITTER)


def _expected(n: int, interval: dt.timedelta) -> float:
    rng = random.Random(n)
    return sum(next_delay(n, interval, rng).total_seconds() for _ in range(200)) / 200


@given(st.integers(min_value=0, max_value=40), intervals)
def test_non_decreasing_in_expectation(n: int, interval: dt.timedelta) -> None:
    # the midpoint of the jitter band never decreases with one more failure
    def mid(k: int) -> float:
        lo = next_delay(k, interval, _Fixed(0.0)).total_seconds()
        hi = next_delay(k, interval, _Fixed(1.0)).total_seconds()
        return (lo + hi) / 2

    assert mid(n + 1) >= mid(n)


def test_sampled_expectation_grows_then_caps() -> None:
    interval = dt.timedelta(minutes=15)
    means = [_expected(n, interval) for n in range(0, 12)]
    assert means[0] == means[1] or abs(means[0] - means[1]) < 0.05 * means[0]
    assert means[2] > 1.5 * means[1]
    assert abs(means[-1] - BACKOFF_CAP.total_seconds()) < 0.05 * BACKOFF_CAP.total_seconds()


def test_success_resets_to_interval() -> None:
    interval = dt.timedelta(minutes=15)
    rng = random.Random(1)
    assert next_delay(9, interval, rng) > dt.timedelta(hours=5)
    back = next_delay(0, interval, rng)
    assert interval * 0.9 <= back <= interval * 1.1


def test_doubling() -> None:
    interval = dt.timedelta(minutes=10)
    got = [next_delay(n, interval, _Fixed(0.5)) for n in range(1, 7)]
    assert [round(d.total_seconds() / 60) for d in got] == [10, 20, 40, 80, 160, 320]
    assert next_delay(7, interval, _Fixed(0.5)) == BACKOFF_CAP


def test_jitter_spreads() -> None:
    rng = random.Random(7)
    values = {next_delay(0, dt.timedelta(minutes=15), rng) for _ in range(20)}
    assert len(values) > 10


class _Fixed(random.Random):
    """uniform(a, b) at a fixed fraction of the way from a to b."""

    def __init__(self, frac: float) -> None:
        super().__init__(0)
        self.frac = frac

    def uniform(self, a: float, b: float) -> float:
        return a + (b - a) * self.frac


@dataclass
class Status:
    last_success: dt.datetime | None = None
    next_attempt: dt.datetime | None = None
    failures: int = 0
    last_error: str | None = None
    last_error_at: dt.datetime | None = None


NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
IV = dt.timedelta(minutes=15)


def test_initial_never_synced_runs_at_once() -> None:
    assert initial_delay(None, IV, NOW) == dt.timedelta(0)
    assert initial_delay(Status(), IV, NOW) == dt.timedelta(0)


def test_initial_recent_success_waits_the_rest() -> None:
    st_ = Status(last_success=NOW - dt.timedelta(minutes=5), next_attempt=NOW + dt.timedelta(minutes=10))
    assert initial_delay(st_, IV, NOW) == dt.timedelta(minutes=10)


def test_initial_old_success_runs_at_once() -> None:
    st_ = Status(last_success=NOW - dt.timedelta(minutes=20), next_attempt=NOW + dt.timedelta(hours=1))
    assert initial_delay(st_, IV, NOW) == dt.timedelta(0)


def test_initial_passed_next_attempt_runs_at_once() -> None:
    st_ = Status(last_success=NOW - dt.timedelta(minutes=1), next_attempt=NOW - dt.timedelta(seconds=1))
    assert initial_delay(st_, IV, NOW) == dt.timedelta(0)


def test_initial_failing_account_keeps_its_backoff() -> None:
    st_ = Status(last_success=NOW - dt.timedelta(days=2), next_attempt=NOW + dt.timedelta(hours=2), failures=5)
    assert initial_delay(st_, IV, NOW) == dt.timedelta(hours=2)


def test_initial_naive_times_are_utc() -> None:
    st_ = Status(last_success=(NOW - dt.timedelta(minutes=5)).replace(tzinfo=None))
    assert initial_delay(st_, IV, NOW) == dt.timedelta(minutes=10)
