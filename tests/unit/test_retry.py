from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from hookline.config import DEFAULT_SCHEDULE
from hookline.retry import RetryPolicy, parse_duration, parse_retry_after, parse_schedule

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("15", 15), ("15s", 15), ("500ms", 0.5), ("5m", 300), ("2h", 7200), ("1d", 86400)],
)
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "5 minutes", "-5s"])
def test_bad_durations_are_refused(text):
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


def test_the_default_schedule_is_at_once_then_seven_retries():
    assert parse_schedule(DEFAULT_SCHEDULE) == (0, 5, 300, 1800, 7200, 18000, 36000, 36000)


def test_next_attempt_follows_the_schedule_and_gives_up_after_it():
    policy = RetryPolicy((0, 5, 300), jitter=0, retry_after_max=3600)
    assert policy.next_attempt(1, NOW) == NOW + timedelta(seconds=5)
    assert policy.next_attempt(2, NOW) == NOW + timedelta(seconds=300)
    assert policy.next_attempt(3, NOW) is None


def test_jitter_spreads_delays_within_bounds():
    policy = RetryPolicy((0, 100), jitter=0.2, retry_after_max=3600)
    delays = {(policy.next_attempt(1, NOW) - NOW).total_seconds() for _ in range(200)}  # type: ignore[operator]
    assert min(delays) >= 80 and max(delays) <= 120
    assert len(delays) > 100


def test_retry_after_wins_when_longer_and_is_capped():
    policy = RetryPolicy((0, 5), jitter=0, retry_after_max=60)
    assert policy.next_attempt(1, NOW, retry_after=30) == NOW + timedelta(seconds=30)
    assert policy.next_attempt(1, NOW, retry_after=1) == NOW + timedelta(seconds=5)
    assert policy.next_attempt(1, NOW, retry_after=10_000) == NOW + timedelta(seconds=60)


def test_retry_after_in_seconds_and_as_an_http_date():
    assert parse_retry_after("120", NOW) == 120
    assert parse_retry_after("Thu, 01 Jan 2026 00:02:00 GMT", NOW) == 120
    assert parse_retry_after("yesterday", NOW) is None
    assert parse_retry_after(None, NOW) is None
