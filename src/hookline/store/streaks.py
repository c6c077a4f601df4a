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


@dataclass(frozen=True, slots=True, kw_only=True)
class WebhookChange:
    """Everything one batch changes on one webhook."""

    streak: StreakUpdate
    #: the latest pause a receiver asked for in the batch, if any
    pause_until: datetime | None
    #: disable at once, saying why (410 Gone)
    disable_reason: str | None


def webhook_changes(outcomes: list[Outcome]) -> list[WebhookChange]:
    """Per webhook, in webhook id order: every writer takes the rows' locks in the same
    order, so two dispatchers recording at once never deadlock."""
    by_webhook: dict[str, list[Outcome]] = {}
    for outcome in outcomes:
        by_webhook.setdefault(outcome.job.webhook_id, []).append(outcome)
    changes = []
    for streak in streak_updates(by_webhook):
        batch = by_webhook[streak.webhook_id]
        pauses = [o.pause_webhook_until for o in batch if o.pause_webhook_until is not None]
        reasons = [o.disable_reason for o in batch if o.disable_reason]
        changes.append(
            WebhookChange(
                streak=streak,
                pause_until=max(pauses) if pauses else None,
                disable_reason=reasons[0] if reasons else None,
            )
        )
    return changes


def quiet(change: WebhookChange) -> bool:
    """Only successes: the streak, if any, ends; nothing to pause, disable or announce. The
    common case, written for a whole batch in one statement."""
    streak = change.streak
    return (
        streak.reset
        and not streak.failures
        and change.pause_until is None
        and change.disable_reason is None
    )


def streak_updates(by_webhook: dict[str, list[Outcome]]) -> list[StreakUpdate]:
    updates = []
    for webhook_id in sorted(by_webhook):
        batch = by_webhook[webhook_id]
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
