"""When to try a failed delivery again.

The schedule lists the delay before each attempt, the first included: the default
``0s, 5s, 5m, 30m, 2h, 5h, 10h, 10h`` sends at once, then retries seven times over about 28
hours. Each retry's delay is spread by ±jitter so that receivers that failed together are not
retried together; a ``Retry-After`` longer than the scheduled delay wins, up to a cap.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")


def parse_duration(text: str) -> float:
    """Seconds in ``"15"``, ``"15s"``, ``"500ms"``, ``"5m"``, ``"2h"`` or ``"1d"``."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"not a duration: {text!r} (use e.g. 500ms, 15s, 5m, 2h, 1d)")
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


def parse_schedule(text: str) -> tuple[float, ...]:
    delays = tuple(parse_duration(part) for part in text.split(",") if part.strip())
    if not delays:
        raise ValueError("the retry schedule needs at least one entry")
    return delays


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds asked for by a ``Retry-After`` header (delta-seconds or HTTP-date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - now).total_seconds())


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    schedule: Sequence[float]
    jitter: float
    retry_after_max: float

    def next_attempt(
        self, scheduled_attempts: int, now: datetime, retry_after: float | None = None
    ) -> datetime | None:
        """When to try again after ``scheduled_attempts`` attempts, or None to give up."""
        if scheduled_attempts >= len(self.schedule):
            return None
        delay = self.schedule[scheduled_attempts]
        if delay and self.jitter:
            delay *= random.uniform(1 - self.jitter, 1 + self.jitter)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.retry_after_max))
        return now + timedelta(seconds=delay)
