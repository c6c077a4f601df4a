"""Per-webhook failure streaks, from a batch of outcomes: the same arithmetic for every
backend, so that auto-disable and the failing alert mean the same everywhere."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ..models import Outcome, Webhook, WebhookAlert
from .base import RecordRules, alert


@dataclass(frozen=True, slots=True, kw_only=True)
class StreakUpdate:
    webhook_id: str
    #: a success in the batch ended the previous streak: start counting from it
    reset: bool
    #: failed attempts to add (after the last success, when ``reset``)
    failures: int
    #: when the failures counted here began, or None
    first_failure_at: datetime | None


def streak_updates(outcomes: list[Outcome]) -> list[StreakUpdate]:
    by_webhook: dict[str, list[Outcome]] = {}
    for outcome in outcomes:
        by_webhook.setdefault(outcome.job.webhook_id, []).append(outcome)
    updates = []
    for webhook_id, batch in by_webhook.items():
        batch.sort(key=lambda o: o.attempt.started_at)
        successes = [i for i, o in enumerate(batch) if o.attempt.error_kind is None]
        after = batch[successes[-1] + 1 :] if successes else batch
        updates.append(
            StreakUpdate(
                webhook_id=webhook_id,
                reset=bool(successes),
                failures=len(after),
                first_failure_at=after[0].attempt.started_at if after else None,
            )
        )
    return updates


def judge(
    webhook: Webhook, consecutive: int, update: StreakUpdate, rules: RecordRules, now: datetime
) -> tuple[WebhookAlert | None, str | None]:
    """After applying ``update``: the failing alert to raise (when the streak just crossed the
    threshold) and why to disable the webhook (when it has failed for the whole window)."""
    failing = None
    if update.failures and consecutive >= rules.failing_threshold > consecutive - update.failures:
        failing = alert(webhook, "failing", consecutive, f"{consecutive} attempts in a row failed")
    disable = None
    if webhook.failing_since is not None and webhook.failing_since <= now - rules.disable_after:
        disable = f"every attempt failed since {webhook.failing_since:%Y-%m-%d %H:%M} UTC"
    return failing, disable
