"""The bounce mailbox actor: returned messages and complaints into the journal.

A source is a Maildir (the messages in ``new/``) or an IMAP folder (its
unseen messages, read with imaplib in a worker thread).  For one message, its
events, the suppressions they cause and any sender-reputation alert commit in
one journal transaction.  Only after that commit does the message move to
``cur/`` (IMAP: get the ``\\Seen`` flag).  A crash in between leaves it unread,
and reading it again changes nothing because every event carries a provider
event id made from the message's name or UID.  A message that cannot be
classified moves to ``rejected/`` beside a ``.error`` file with the reason
(IMAP: stays, flagged), so no message is lost or read forever.

The original Message-ID links a returned message to its review request: a
failure marks a ``sent`` request ``bounced`` in the same transaction.

:func:`decide` is the pure step: a parsed message in, the action out.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final, Protocol, final

import msgspec
import trio

from plaudit.actors.base import ChildContext
from plaudit.config.model import BounceMailboxConfig, DeliverabilityConfig
from plaudit.journal import AsyncJournal, Tx
from plaudit.messaging.deliverability import BounceResult, parse_bounce
from plaudit.messaging.deliverability.imap import ImapSource
from plaudit.messaging.deliverability.mime import MAX_MESSAGE_BYTES
from plaudit.messaging.deliverability.store import record_event
from plaudit.messaging.deliverability.suppression import (
    EventKind,
    MessageEvent,
    SuppressionPolicy,
)
from plaudit.messaging.event_rules import CampaignRules, CampaignRulesSource, no_rules
from plaudit.messaging.request_events import emit_for_message_event
from plaudit.messaging.stop_events import stop_for_message_event
from plaudit.messaging.submission import confirm_submission
from plaudit.metrics import BOUNCE_MESSAGES

log = logging.getLogger(__name__)

# Returned messages come back from mail sent over SMTP, so their events count
# against that provider's sends.
PROVIDER: Final = "smtp"
REJECTED_FOLDER: Final = "rejected"
# Messages read per pass; the rest wait for the next pass.
MAX_MESSAGES_PER_PASS: Final = 200
REPUTATION_EVENT: Final = "deliverability.alert"


@final
class Record(msgspec.Struct, frozen=True, kw_only=True):
    """Action: store these events, then move the message to ``cur/``."""

    events: tuple[MessageEvent, ...]


@final
class Ignore(msgspec.Struct, frozen=True, kw_only=True):
    """Action: the message is no bounce (an auto-reply, say); move it to ``cur/``."""

    reason: str


@final
class Reject(msgspec.Struct, frozen=True, kw_only=True):
    """Action: move the message to ``rejected/`` with the reason in an error file."""

    reason: str


def decide(result: BounceResult, *, at: float) -> Record | Ignore | Reject:
    """Turn one parsed message into the events to store, or the reason there are none."""
    if result.kind == "not_bounce":
        return Ignore(reason=result.reason)
    if result.kind == "unknown":
        return Reject(reason=result.reason)

    outcomes = [
        (status.recipient, status.kind, status.final, status.status) for status in result.recipients
    ]
    if not outcomes:
        outcomes = [(result.recipient, result.kind, result.final, result.status)]
    events = []
    for recipient, kind, is_final, status in outcomes:
        event_kind = _event_kind(kind, final=is_final)
        if recipient and event_kind is not None:
            events.append(
                MessageEvent(
                    address=recipient,
                    kind=event_kind,
                    at=at,
                    status=status,
                    provider=PROVIDER,
                    message_id=result.original_message_id,
                )
            )
    if not events:
        return Reject(reason=f"{result.kind} without a recipient address: {result.reason}")
    return Record(events=tuple(events))


def _event_kind(kind: str, *, final: bool | None) -> EventKind | None:
    if kind in ("hard_bounce", "soft_bounce", "policy_block") and final is False:
        # A delay warning: the sending server keeps trying.
        return "deferred"
    if kind == "hard_bounce":
        return "hard_bounce"
    if kind == "soft_bounce":
        return "soft_bounce"
    if kind == "policy_block":
        return "policy_block"
    if kind == "complaint":
        return "complaint"
    return None


def record_message(
    tx: Tx,
    event_id: str,
    record: Record,
    *,
    policy: SuppressionPolicy,
    rules: CampaignRules | None = None,
) -> int:
    """Store one message's events with their suppressions; return how many were new.

    ``event_id`` names the message in its mailbox; each event's provider event
    id extends it, so storing the same message twice adds nothing.  A new
    complaint or hard bounce stops the campaigns in ``rules`` at once.
    """
    stored = 0
    for index, event in enumerate(record.events):
        decision = record_event(tx, event, policy=policy, provider_event_id=f"{event_id}:{index}")
        if decision is None:
            continue
        stored += 1
        request_id = link_request(tx, event)
        emit_for_message_event(tx, event)
        confirm_submission(tx, event)
        stop_for_message_event(tx, event, rules or no_rules())
        if decision.alert is not None:
            tx.emit(
                type=REPUTATION_EVENT,
                key=f"{REPUTATION_EVENT}:{event_id}:{index}",
                platform="email",
                subject=PROVIDER,
                payload={
                    "alert": "sender_reputation",
                    "provider": PROVIDER,
                    "domain": decision.address.rpartition("@")[2],
                    "status": event.status,
                    "message_id": event.message_id,
                    "request_id": request_id,
                },
            )
    return stored


# A sent request whose message came back failed is bounced; other states stay.
_BOUNCE_REQUEST = """
UPDATE requests SET state = 'bounced', last_error = ?, updated_at = ?
WHERE message_id = ? AND state = 'sent'
RETURNING id
"""
_REQUEST_BY_MESSAGE_ID = "SELECT id FROM requests WHERE message_id = ?"


def link_request(tx: Tx, event: MessageEvent) -> int | None:
    """Find the review request by the returned message's Message-ID; mark it bounced on failure.

    Returns the request id, or None when the Message-ID is missing or unknown.
    """
    if event.message_id is None:
        return None
    if event.kind in ("hard_bounce", "soft_bounce", "policy_block"):
        error = f"{event.kind} {event.status or 'without a status code'} for {event.address}"
        row = tx.execute(_BOUNCE_REQUEST, (error, tx.now, event.message_id)).fetchone()
        if row is not None:
            log.info("bounces.request_bounced", extra={"request": row[0], "kind": event.kind})
            return int(row[0])
    row = tx.execute(_REQUEST_BY_MESSAGE_ID, (event.message_id,)).fetchone()
    return None if row is None else int(row[0])


@final
class BounceStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """A point-in-time view of the bounce mailbox actor."""

    recorded: int
    ignored: int
    rejected: int
    passes: int
    last_error: str | None


class MailSource(Protocol):
    """A mailbox the actor reads; every method blocks and raises OSError on failure."""

    label: str

    def list_new(self, limit: int) -> list[str]: ...

    def read(self, key: str, max_bytes: int) -> bytes: ...

    def event_id(self, key: str) -> str: ...

    def done(self, key: str) -> None: ...

    def reject(self, key: str, reason: str) -> None: ...

    def close(self) -> None: ...


@final
class MaildirSource:
    """The messages in a Maildir's ``new/`` folder."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.label = str(path)

    def __repr__(self) -> str:
        return f"<MaildirSource {self.path}>"

    def list_new(self, limit: int) -> list[str]:
        """Return up to ``limit`` names in ``new/``, oldest name first."""
        if not (self.path / "cur").is_dir():
            raise FileNotFoundError(f"{self.path} has no cur/ folder; create new/, cur/ and tmp/")
        names = sorted(entry.name for entry in os.scandir(self.path / "new") if entry.is_file())
        return names[:limit]

    def read(self, key: str, max_bytes: int) -> bytes:
        with (self.path / "new" / key).open("rb") as file:
            return file.read(max_bytes)

    def event_id(self, key: str) -> str:
        # The unique part of a Maildir name, without the ":2,flags" info.
        return f"maildir:{key.split(':', 1)[0]}"

    def done(self, key: str) -> None:
        """Move a message to ``cur/`` marked seen, as a mail client does."""
        target = key if ":" in key else f"{key}:2,S"
        os.replace(self.path / "new" / key, self.path / "cur" / target)

    def reject(self, key: str, reason: str) -> None:
        """Move a message to ``rejected/`` and write the reason to ``<name>.error`` beside it."""
        folder = self.path / REJECTED_FOLDER
        folder.mkdir(exist_ok=True)
        (folder / f"{key}.error").write_text(reason + "\n", encoding="utf-8")
        os.replace(self.path / "new" / key, folder / key)

    def close(self) -> None:
        """Release nothing: a Maildir holds no connection."""


def sources_of(config: DeliverabilityConfig, *, state_dir: Path) -> list[MailSource]:
    """Build the sources that ``[deliverability.mailbox]`` configures, Maildir first."""
    mailbox = config.mailbox
    if mailbox is None:
        return []
    sources: list[MailSource] = []
    if mailbox.maildir:
        # An absolute maildir replaces state_dir here.
        sources.append(MaildirSource(state_dir / mailbox.maildir))
    if mailbox.imap_host:
        sources.append(ImapSource(mailbox, state_dir=state_dir))
    return sources


@final
class BounceMailboxActor:
    """Reads every bounce mailbox source every ``poll_interval`` seconds."""

    def __init__(
        self,
        journal: AsyncJournal,
        sources: Sequence[MailSource],
        *,
        policy: SuppressionPolicy,
        poll_interval: float,
        clock: Callable[[], float] = time.time,
        settings: Callable[[], DeliverabilityConfig] | None = None,
        state_dir: Path | None = None,
        rules: CampaignRulesSource = no_rules,
    ) -> None:
        self.name = "bounces"
        self.journal = journal
        self.sources = list(sources)
        self.policy = policy
        self.poll_interval = poll_interval
        self._clock = clock
        # Read before each pass, so a reload applies from the next pass on.
        self._settings = settings
        # Read for each message, so a reload applies from the next message on.
        self._rules = rules
        self._mailbox: BounceMailboxConfig | None = None
        # Relative paths of a reloaded configuration start here.
        self._state_dir = state_dir or Path.cwd()
        self._counts = {"recorded": 0, "ignored": 0, "rejected": 0}
        self._passes = 0
        self._last_error: str | None = None

    def __repr__(self) -> str:
        labels = ", ".join(source.label for source in self.sources)
        return f"<BounceMailboxActor [{labels}] passes={self._passes} {self._counts}>"

    def statistics(self) -> BounceStatistics:
        return BounceStatistics(
            recorded=self._counts["recorded"],
            ignored=self._counts["ignored"],
            rejected=self._counts["rejected"],
            passes=self._passes,
            last_error=self._last_error,
        )

    async def start(self, ctx: ChildContext) -> None:
        """Read the mailbox at once, then every ``poll_interval`` seconds until a stop request."""
        ctx.started()
        while not ctx.stop_requested.is_set():
            await self.read_once()
            with trio.move_on_after(self.poll_interval):
                await ctx.stop_requested.wait()

    async def read_once(self) -> int:
        """Process the new messages of every source; return how many were processed."""
        if self._settings is not None:
            self.configure(self._settings())
        processed = 0
        for source in self.sources:
            processed += await self._read_source(source)
        self._passes += 1
        return processed

    def configure(self, config: DeliverabilityConfig) -> None:
        """Apply the suppression policy and mailbox of a (reloaded) configuration."""
        self.policy = policy_of(config)
        mailbox = config.mailbox
        if mailbox is None or mailbox == self._mailbox:
            # NOTE: removing the whole mailbox table by a reload keeps the
            # sources read so far; the actor stops at the next restart.
            return
        try:
            sources = sources_of(config, state_dir=self._state_dir)
        except OSError as error:
            self._report_error(f"mailbox configuration not applied: {error}")
            return
        for source in self.sources:
            source.close()
        self.sources = sources
        self.poll_interval = mailbox.poll_interval
        self._mailbox = mailbox

    async def _read_source(self, source: MailSource) -> int:
        try:
            # Listing, reading and closing change nothing, so a stop request
            # abandons them to their thread instead of waiting for a network timeout.
            keys = await trio.to_thread.run_sync(
                source.list_new, MAX_MESSAGES_PER_PASS, abandon_on_cancel=True
            )
            for key in keys:
                await self._process(source, key)
        except OSError as error:
            self._report_error(f"cannot read the mailbox {source.label}: {error}")
            return 0
        finally:
            # Shielded, so a stop request still logs out, but for 5 s at most.
            with trio.move_on_after(5.0, shield=True):
                await trio.to_thread.run_sync(source.close, abandon_on_cancel=True)
        return len(keys)

    async def _process(self, source: MailSource, key: str) -> None:
        try:
            # One byte over the parser's limit, so the parser can report the size.
            data = await trio.to_thread.run_sync(
                source.read, key, MAX_MESSAGE_BYTES + 1, abandon_on_cancel=True
            )
        except OSError as error:
            # Skipped for this pass; the other messages go on.
            self._report_error(f"cannot read message {key} of {source.label}: {error}")
            return

        result = await trio.to_thread.run_sync(parse_bounce, data)
        action = decide(result, at=self._clock())
        event_id = source.event_id(key)
        if isinstance(action, Record):
            stored = await self.journal.transaction(
                lambda tx: record_message(
                    tx, event_id, action, policy=self.policy, rules=self._rules()
                )
            )
            # A crash before this line leaves the message unread; reading it
            # again stores nothing new, because the event ids repeat.
            await trio.to_thread.run_sync(source.done, key)
            self._count("recorded", key, events=stored, kind=result.kind)
        elif isinstance(action, Ignore):
            await trio.to_thread.run_sync(source.done, key)
            self._count("ignored", key, reason=action.reason)
        else:
            await trio.to_thread.run_sync(source.reject, key, action.reason)
            self._count("rejected", key, reason=action.reason)

    def _count(self, outcome: str, key: str, **fields: object) -> None:
        self._counts[outcome] += 1
        BOUNCE_MESSAGES.labels(outcome=outcome).inc()
        log.info("bounces.processed", extra={"outcome": outcome, "file": key, **fields})

    def _report_error(self, error: str) -> None:
        if error != self._last_error:
            # Logged once per distinct error, so a missing folder does not log every pass.
            log.error("bounces.mailbox_error", extra={"error": error})
        self._last_error = error


def policy_of(config: DeliverabilityConfig) -> SuppressionPolicy:
    return SuppressionPolicy(
        soft_bounce_limit=config.soft_bounce_limit,
        soft_bounce_window_seconds=config.soft_bounce_window,
    )


def build_bounce_actor(
    config: DeliverabilityConfig,
    journal: AsyncJournal,
    *,
    state_dir: Path,
    settings: Callable[[], DeliverabilityConfig] | None = None,
    rules: CampaignRulesSource = no_rules,
) -> BounceMailboxActor | None:
    """Build the actor when ``[deliverability.mailbox]`` names a mailbox, else return None.

    ``settings`` returns the current configuration; the actor reads it before each pass.
    ``rules`` returns the campaigns that stop on complaints and hard bounces.
    """
    sources = sources_of(config, state_dir=state_dir)
    if not sources or config.mailbox is None:
        return None
    actor = BounceMailboxActor(
        journal,
        sources,
        policy=policy_of(config),
        poll_interval=config.mailbox.poll_interval,
        settings=settings,
        state_dir=state_dir,
        rules=rules,
    )
    actor.configure(config)
    return actor
