"""Prometheus metrics, per process, names prefixed ``hookline_``. Labels are bounded: topics
(from the catalog), outcomes and error kinds; never event, delivery or webhook ids."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from .models import DeliveryStatus, Outcome


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueStats:
    due: int
    oldest_due_at: datetime | None
    disabled_webhooks: int


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._durations: dict[str, Any] = {}
        self.events_published = Counter(
            "hookline_events_published_total",
            "Events accepted and stored, by topic.",
            ["topic"],
            registry=self.registry,
        )
        self.deliveries = Counter(
            "hookline_deliveries_total",
            "Finished attempts by what became of their delivery: succeeded, retrying, failed.",
            ["outcome"],
            registry=self.registry,
        )
        self.attempt_duration = Histogram(
            "hookline_attempt_duration_seconds",
            "How long attempts took, by result (ok, or the error kind).",
            ["result"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30),
            registry=self.registry,
        )
        self.due = Gauge(
            "hookline_deliveries_due",
            "Deliveries due now and not yet claimed.",
            registry=self.registry,
        )
        self.oldest_due_age = Gauge(
            "hookline_oldest_due_age_seconds",
            "How long the oldest due delivery has been waiting.",
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "hookline_in_flight",
            "Requests this process has in flight.",
            registry=self.registry,
        )
        self.disabled_webhooks = Gauge(
            "hookline_webhooks_disabled",
            "Webhooks that are disabled.",
            registry=self.registry,
        )

    def published(self, topic: str) -> None:
        self.events_published.labels(topic).inc()

    def recorded(self, outcomes: list[Outcome]) -> None:
        # once per batch and label where it can: prometheus_client's labels() is not cheap
        counts: dict[str, int] = {}
        for outcome in outcomes:
            status = outcome.status
            label = "retrying" if status is DeliveryStatus.PENDING else status.value
            counts[label] = counts.get(label, 0) + 1
            kind = outcome.attempt.error_kind
            self._duration_of("ok" if kind is None else kind.value).observe(
                outcome.attempt.duration_ms / 1000
            )
        for label, count in counts.items():
            self.deliveries.labels(label).inc(count)

    def _duration_of(self, outcome: str) -> Any:
        child = self._durations.get(outcome)
        if child is None:
            child = self._durations[outcome] = self.attempt_duration.labels(outcome)
        return child

    def observe_queue(self, stats: QueueStats, now: datetime, in_flight: int) -> None:
        self.due.set(stats.due)
        age = 0.0 if stats.oldest_due_at is None else (now - stats.oldest_due_at).total_seconds()
        self.oldest_due_age.set(max(age, 0.0))
        self.disabled_webhooks.set(stats.disabled_webhooks)
        self.in_flight.set(in_flight)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
