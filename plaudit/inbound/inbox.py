"""The durable inbox: raw provider requests in ``inbound_events`` and their processing.

The listener calls :func:`accept` inside a journal transaction before it
responds 2xx, so an acknowledged request is never lost.  The same transaction
enqueues an ``inbound.process`` job; :func:`process` maps the stored body to
Plaudit's events and records them.  Both steps are idempotent: a repeated
request (same provider and provider event id) is not stored twice, and each
delivery event carries its own provider event id into the message events
table, whose unique index drops repeats.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any, Final, Literal, final

import msgspec

from plaudit import metrics
from plaudit.actors.base import Actor, Effects
from plaudit.errors import PlatformError
from plaudit.inbound.events import map_events
from plaudit.inbound.mapping import InboundEvent, MappingError
from plaudit.journal import AsyncJournal, Job, Tx
from plaudit.messaging.deliverability.store import record_event
from plaudit.messaging.deliverability.suppression import MessageEvent, SuppressionPolicy
from plaudit.messaging.event_rules import CampaignRules, CampaignRulesSource, no_rules
from plaudit.messaging.request_events import emit_for_message_event
from plaudit.messaging.sms_events import HELP_EVENT, OPT_IN_EVENT, apply_keyword, track_status
from plaudit.messaging.stop_events import stop_for_message_event
from plaudit.messaging.submission import confirm_submission
from plaudit.reliability.monitor import disk_full

log = logging.getLogger(__name__)

PROCESS_KIND: Final = "inbound.process"
OWNER: Final = "inbound"

_INSERT = """
INSERT INTO inbound_events (provider, provider_event_id, headers, body, received_at, state)
VALUES (?, ?, ?, ?, ?, 'pending')
ON CONFLICT (provider, provider_event_id) DO NOTHING
RETURNING id
"""
_SELECT = """
SELECT provider, provider_event_id, body, received_at, state FROM inbound_events WHERE id = ?
"""
_FINISH = """
UPDATE inbound_events SET state = ?, events = ?, reason = ?, processed_at = ? WHERE id = ?
"""

State = Literal["processed", "ignored", "confirmation_required", "failed"]

# The savepoint that keeps a failed event's partial writes out of its job's commit.
_SAVEPOINT: Final = "inbound_event"


class InboundProcessingError(PlatformError):
    """Mapping a stored request raised unexpectedly; the job is retried."""


@final
class Outcome(msgspec.Struct, frozen=True, kw_only=True):
    """The result of processing one stored request."""

    state: State
    events: int
    reason: str | None = None
    syncs: int = 0


def accept(
    tx: Tx, *, provider: str, delivery_id: str, headers: Mapping[str, str], body: bytes
) -> int | None:
    """Store one verified request and enqueue its processing; None when it is a repeat."""
    row = tx.execute(
        _INSERT,
        (provider, delivery_id, json.dumps(dict(headers), sort_keys=True), body, tx.now),
    ).fetchone()
    if row is None:
        return None

    inbound_id = int(row[0])
    tx.enqueue(
        kind=PROCESS_KIND,
        owner=OWNER,
        key=f"{PROCESS_KIND}:{inbound_id}",
        payload={"id": inbound_id, "provider": provider},
    )
    return inbound_id


@final
class Stored(msgspec.Struct, frozen=True, kw_only=True):
    """One request as the inbox stores it."""

    id: int
    provider: str
    delivery_id: str
    body: bytes
    received_at: float
    state: str


def load(rows: Sequence[Any], inbound_id: int) -> Stored | None:
    if not rows:
        return None
    provider, delivery_id, body, received_at, state = rows[0]
    return Stored(
        id=inbound_id,
        provider=str(provider),
        delivery_id=str(delivery_id),
        body=bytes(body),
        received_at=float(received_at),
        state=str(state),
    )


def plan(stored: Stored) -> list[InboundEvent] | str:
    """Map a stored request: its events, or the reason it contains none (pure)."""
    try:
        return map_events(
            stored.provider,
            stored.body,
            received_at=stored.received_at,
            delivery_id=stored.delivery_id,
        )
    except MappingError as error:
        return str(error)


def record(
    tx: Tx,
    stored: Stored,
    planned: list[InboundEvent] | str,
    *,
    policy: SuppressionPolicy,
    platforms: frozenset[str],
    rules: CampaignRules | None = None,
) -> Outcome | None:
    """Write what ``plan`` decided; None when another attempt processed the request first."""
    current = tx.execute("SELECT state FROM inbound_events WHERE id = ?", (stored.id,)).fetchone()
    if current is None or current[0] != "pending":
        return None

    if isinstance(planned, str):
        outcome = Outcome(state="ignored", events=0, reason=planned)
    else:
        outcome = _apply(
            tx, stored.provider, planned, policy=policy, platforms=platforms, rules=rules
        )
    tx.execute(_FINISH, (outcome.state, outcome.events, outcome.reason, tx.now, stored.id))
    metrics.INBOUND_PROCESSED.labels(provider=stored.provider, outcome=outcome.state).inc()
    return outcome


def process(
    tx: Tx,
    inbound_id: int,
    *,
    policy: SuppressionPolicy,
    platforms: frozenset[str],
    rules: CampaignRules | None = None,
) -> Outcome | None:
    """Map and record one stored request in one step; None when it was processed before."""
    stored = load(tx.execute(_SELECT, (inbound_id,)).fetchall(), inbound_id)
    if stored is None or stored.state != "pending":
        return None
    return record(tx, stored, plan(stored), policy=policy, platforms=platforms, rules=rules)


def _apply(
    tx: Tx,
    provider: str,
    events: Sequence[InboundEvent],
    *,
    policy: SuppressionPolicy,
    platforms: frozenset[str],
    rules: CampaignRules | None = None,
) -> Outcome:
    recorded = 0
    syncs = 0
    reasons: list[str] = []
    current = rules or no_rules()
    for event in events:
        if event.type == "subscription.confirmation":
            # The SubscribeURL is never fetched: an operator confirms the topic in AWS.
            log.warning(
                "inbound.subscription_confirmation",
                extra={"provider": provider, "message_id": event.provider_event_id},
            )
            return Outcome(
                state="confirmation_required",
                events=0,
                reason=(
                    "SNS subscription confirmation; check the topic, then run "
                    "`plaudit ctl inbound --confirm ID`"
                ),
            )
        if event.type == "platform.push":
            if _enqueue_sync(tx, event, platforms):
                syncs += 1
            else:
                reasons.append(f"platform {event.platform!r} is not configured; push skipped")
            continue
        if event.type in (HELP_EVENT, OPT_IN_EVENT):
            if apply_keyword(tx, event):
                recorded += 1
            else:
                reasons.append(f"{event.type} from a number with nothing to change")
            continue
        if event.kind is None or not event.recipient:
            reasons.append(f"{event.type} {event.provider_event_id} names no recipient")
            continue
        message = MessageEvent(
            address=event.recipient,
            kind=event.kind,
            at=event.occurred_at,
            status=event.status,
            provider=provider,
            message_id=event.message_id,
            url=event.url,
        )
        if record_event(tx, message, policy=policy, provider_event_id=event.provider_event_id):
            recorded += 1
            if provider == "twilio":
                track_status(tx, event)
            else:
                emit_for_message_event(tx, message, review_links=current.review_links)
                confirm_submission(tx, message)
                stop_for_message_event(tx, message, current)
    state: State = "processed" if recorded or syncs else "ignored"
    reason = "; ".join(reasons) if reasons else None
    if state == "ignored" and reason is None:
        reason = "every event was recorded before"
    return Outcome(state=state, events=recorded, reason=reason, syncs=syncs)


@final
class SyncRequest(msgspec.Struct, frozen=True, kw_only=True):
    """The targeted sync job that a platform push requests."""

    kind: str
    owner: str
    key: str
    payload: dict[str, Any]


def sync_job_for(event: InboundEvent) -> SyncRequest | None:
    """Return the sync job for the profile a platform push names, or None when it names none."""
    profile = event.profile or ""
    key_suffix = f"push:{event.provider_event_id}"
    if event.platform == "google":
        account, _, location = profile.partition("/locations/")
        if not account.startswith("accounts/") or not location:
            return None
        payload: dict[str, Any] = {
            "account": account,
            "location": f"locations/{location}",
            "push": True,
        }
        if event.review:
            # The actor fetches just this review instead of listing the location.
            payload["review"] = event.review
        return SyncRequest(
            kind="google.sync",
            owner="google",
            key=f"google.sync:{profile}:{key_suffix}",
            payload=payload,
        )
    if event.platform == "facebook" and profile:
        return SyncRequest(
            kind="facebook.sync",
            owner="facebook",
            key=f"facebook.sync:{profile}:{key_suffix}",
            payload={"profile": profile, "push": True},
        )
    return None


def _enqueue_sync(tx: Tx, event: InboundEvent, platforms: frozenset[str]) -> bool:
    job = sync_job_for(event)
    if job is None or event.platform not in platforms:
        return False
    tx.enqueue(kind=job.kind, owner=job.owner, key=job.key, payload=job.payload)
    return True


@final
class InboxActor(Actor):
    """Processes stored inbound requests, one job per request.

    A request whose mapping raises is retried up to the job's max attempts.
    When its recording raises, or its mapping raises on the last attempt, it
    is marked ``failed`` with the error and its job completes.  So one poison
    request neither blocks the others nor crashes the actor.
    """

    kinds = (PROCESS_KIND,)

    def __init__(
        self,
        journal: AsyncJournal,
        *,
        lease_seconds: float,
        platforms: frozenset[str],
        policy: SuppressionPolicy | None = None,
        poll_interval: float = 1.0,
        rules: CampaignRulesSource = no_rules,
    ) -> None:
        super().__init__(
            OWNER, journal, lease_seconds=lease_seconds, poll_interval=poll_interval, batch=32
        )
        self.platforms = platforms
        self.policy = policy or SuppressionPolicy()
        # Read for each request, so a reload applies from the next request on.
        self.rules = rules

    async def handle(self, job: Job) -> Effects | None:
        inbound_id = int(job.payload["id"])
        rows = await self.journal.read(lambda journal: journal.query(_SELECT, [inbound_id]))
        stored = load(rows, inbound_id)
        if stored is None or stored.state != "pending":
            return None
        try:
            planned: list[InboundEvent] | str | Exception = plan(stored)
        except Exception as error:
            if job.attempts < job.max_attempts:
                # The journal retries it with backoff; the other jobs keep running.
                raise InboundProcessingError(
                    f"processing inbound request {inbound_id} from {stored.provider} failed: "
                    f"{error!r}; attempt {job.attempts} of {job.max_attempts}, it will be retried",
                    retryable=True,
                ) from error
            # The last attempt: write() marks the request failed, with this error.
            planned = error

        def write(tx: Tx) -> None:
            if isinstance(planned, Exception):
                mark_failed(tx, stored, planned)
                return
            outcome = record_isolated(
                tx,
                stored,
                planned,
                policy=self.policy,
                platforms=self.platforms,
                rules=self.rules(),
            )
            if outcome is not None:
                log.info(
                    "inbound.processed",
                    extra={"inbound_id": inbound_id, **msgspec.to_builtins(outcome)},
                )

        return write


def record_isolated(
    tx: Tx,
    stored: Stored,
    planned: list[InboundEvent] | str,
    *,
    policy: SuppressionPolicy,
    platforms: frozenset[str],
    rules: CampaignRules | None = None,
) -> Outcome | None:
    """Run ``record`` in a savepoint; when it raises, undo its writes and mark the event failed.

    One event that cannot be recorded (a poison event) so ends in state
    ``failed`` with its error, and the events queued after it still run.  A
    full disk is re-raised instead, because it is not the event's fault.
    """
    tx.execute(f"SAVEPOINT {_SAVEPOINT}")
    try:
        outcome = record(tx, stored, planned, policy=policy, platforms=platforms, rules=rules)
    except Exception as error:
        if disk_full(error):
            raise
        tx.execute(f"ROLLBACK TO {_SAVEPOINT}")
        tx.execute(f"RELEASE {_SAVEPOINT}")
        return mark_failed(tx, stored, error)
    tx.execute(f"RELEASE {_SAVEPOINT}")
    return outcome


def mark_failed(tx: Tx, stored: Stored, error: Exception) -> Outcome | None:
    """Record that processing ``stored`` raised; None when it is no longer pending."""
    current = tx.execute("SELECT state FROM inbound_events WHERE id = ?", (stored.id,)).fetchone()
    if current is None or current[0] != "pending":
        return None

    reason = f"processing failed: {error!r}; the request is kept for inspection"
    outcome = Outcome(state="failed", events=0, reason=reason)
    tx.execute(_FINISH, (outcome.state, 0, reason, tx.now, stored.id))
    metrics.INBOUND_PROCESSED.labels(provider=stored.provider, outcome="failed").inc()
    metrics.INBOUND_POISON_EVENTS.labels(provider=stored.provider).inc()
    log.error(
        "inbound.event_failed",
        extra={"inbound_id": stored.id, "provider": stored.provider, "error": repr(error)},
    )
    return outcome
