"""Rolling deliverability rates from the journal, their alerts and their gauges.

:func:`evaluate` is the pure step: stored events and the thresholds in, rates
per provider and recipient domain plus the alerts they raise out.  The
:class:`DeliverabilityMonitor` shell runs it every ``evaluate_interval``
seconds and sets ``plaudit_deliverability_rate`` per provider.  Recipient
domains appear only in ``ctl`` output, because as metric labels their number
would be unbounded.  Each alert that appears is logged and emitted as a
``deliverability.alert`` event once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final, final, get_args

import msgspec
import trio

from plaudit.config.model import DeliverabilityConfig
from plaudit.journal import AsyncJournal, Journal, Tx
from plaudit.messaging.deliverability.rates import RateThresholds, WindowRates, rolling_rates
from plaudit.messaging.deliverability.suppression import EventKind, MessageEvent
from plaudit.metrics import DELIVERABILITY_RATE

log = logging.getLogger(__name__)

ALERT_EVENT: Final = "deliverability.alert"
# Rows read per evaluation; a window with more events is rated on the newest ones.
MAX_EVENTS: Final = 1_000_000
_EVENTS_SINCE = """
SELECT address, kind, occurred_at, status, provider, message_id FROM message_events
WHERE occurred_at > ? ORDER BY occurred_at DESC LIMIT ?
"""
KNOWN_KINDS: Final[frozenset[str]] = frozenset(get_args(EventKind))
_SUPPRESSION_COUNTS = "SELECT reason, count(*) FROM suppressions GROUP BY reason ORDER BY reason"


@final
class Alert(msgspec.Struct, frozen=True, kw_only=True):
    """One threshold crossed by one provider and recipient domain over one window."""

    provider: str
    # "" for the provider as a whole.
    domain: str
    window_seconds: float
    level: str
    reasons: tuple[str, ...]

    @property
    def key(self) -> str:
        return f"{self.provider}/{self.domain or '*'}/{int(self.window_seconds)}/{self.level}"


@final
class Evaluation(msgspec.Struct, frozen=True, kw_only=True):
    """Rates per provider (domain "") and per provider and domain, with their alerts."""

    at: float
    rates: tuple[WindowRates, ...]
    alerts: tuple[Alert, ...]


def thresholds_of(config: DeliverabilityConfig) -> RateThresholds:
    return RateThresholds(
        complaint_alert=config.complaint_alert,
        complaint_critical=config.complaint_critical,
        hard_bounce_alert=config.hard_bounce_alert,
        min_attempts=config.min_attempts,
    )


def evaluate(
    events: Sequence[MessageEvent], *, now: float, config: DeliverabilityConfig
) -> Evaluation:
    """Rate the events per provider and per provider and domain over every window."""
    thresholds = thresholds_of(config)
    windows = tuple(config.windows)
    # The same events with the address cut to nothing group by provider alone.
    whole = [msgspec.structs.replace(event, address="") for event in events]
    rates = rolling_rates(whole, now=now, windows=windows, thresholds=thresholds)
    rates += rolling_rates(events, now=now, windows=windows, thresholds=thresholds)
    alerts = tuple(
        Alert(
            provider=rate.provider,
            domain=rate.domain,
            window_seconds=rate.window_seconds,
            level=rate.level,
            reasons=rate.alerts,
        )
        for rate in rates
        if rate.level != "ok"
    )
    return Evaluation(at=now, rates=tuple(rates), alerts=alerts)


def load_events(journal: Journal, *, since: float) -> list[MessageEvent]:
    """Read the stored message events that occurred after ``since``."""
    events = []
    for address, kind, at, status, provider, message_id in journal.query(
        _EVENTS_SINCE, (since, MAX_EVENTS)
    ):
        if kind not in KNOWN_KINDS:
            # A kind this version does not rate; it is left out rather than guessed.
            continue
        events.append(
            MessageEvent(
                address=address,
                kind=kind,
                at=at,
                status=status,
                provider=provider,
                message_id=message_id,
            )
        )
    return events


def suppression_counts(journal: Journal) -> dict[str, int]:
    """Count the suppressed addresses by reason."""
    return {str(reason): int(count) for reason, count in journal.query(_SUPPRESSION_COUNTS)}


def set_gauges(evaluation: Evaluation, *, window_seconds: float) -> None:
    """Set the rate gauges of every provider from the given window's provider-wide rates."""
    for rate in evaluation.rates:
        if rate.domain or rate.window_seconds != window_seconds:
            continue
        values = {
            "delivery": rate.delivery_rate,
            "hard_bounce": rate.hard_bounce_rate,
            "complaint": rate.complaint_rate,
        }
        for kind, value in values.items():
            if value is not None:
                DELIVERABILITY_RATE.labels(provider=rate.provider, kind=kind).set(value)


def new_alerts(evaluation: Evaluation, active: Iterable[str]) -> list[Alert]:
    """Return the alerts that were not active before this evaluation."""
    known = set(active)
    return [alert for alert in evaluation.alerts if alert.key not in known]


def emit_alert(tx: Tx, alert: Alert, *, at: float) -> None:
    """Emit one ``deliverability.alert`` event; the key makes it once per alert and hour.

    NOTE: the monitor keeps active alerts in memory, so after a restart an
    alert still active is emitted again (unless within the same hour).
    """
    tx.emit(
        type=ALERT_EVENT,
        key=f"{ALERT_EVENT}:{alert.key}:{int(at // 3600)}",
        platform="email",
        subject=alert.provider,
        payload=msgspec.to_builtins(alert),
    )


@final
class MonitorStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """A point-in-time view of the monitor."""

    evaluations: int
    active_alerts: int
    last_evaluated_at: float | None


@final
class DeliverabilityMonitor:
    """Evaluates the rates every ``evaluate_interval`` seconds and raises new alerts."""

    def __init__(
        self,
        journal: AsyncJournal,
        settings: Callable[[], DeliverabilityConfig],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.journal = journal
        # Returns the current configuration, read at each evaluation so a reload applies.
        self.settings = settings
        self._clock = clock
        self._active: set[str] = set()
        self._evaluations = 0
        self._last: Evaluation | None = None

    def __repr__(self) -> str:
        return (
            f"<DeliverabilityMonitor evaluations={self._evaluations} "
            f"active_alerts={len(self._active)}>"
        )

    def statistics(self) -> MonitorStatistics:
        return MonitorStatistics(
            evaluations=self._evaluations,
            active_alerts=len(self._active),
            last_evaluated_at=None if self._last is None else self._last.at,
        )

    async def evaluate_once(self) -> Evaluation:
        """Rate the stored events now, update the gauges and raise the alerts that are new."""
        now = self._clock()
        config = self.settings()
        since = now - max(config.windows)
        events = await self.journal.read(lambda journal: load_events(journal, since=since))
        evaluation = evaluate(events, now=now, config=config)
        set_gauges(evaluation, window_seconds=min(config.windows))
        raised = new_alerts(evaluation, self._active)
        if raised:
            await self.journal.transaction(lambda tx: _emit_all(tx, raised, now))
        for alert in raised:
            log.warning(
                "deliverability.alert",
                extra={
                    "provider": alert.provider,
                    "domain": alert.domain,
                    "window_seconds": alert.window_seconds,
                    "level": alert.level,
                    "reasons": list(alert.reasons),
                },
            )
        self._active = {alert.key for alert in evaluation.alerts}
        self._evaluations += 1
        self._last = evaluation
        return evaluation

    async def start(self, ctx: Any) -> None:
        """Evaluate at once, then every ``evaluate_interval`` seconds until a stop request."""
        ctx.started()
        while not ctx.stop_requested.is_set():
            await self.evaluate_once()
            with trio.move_on_after(self.settings().evaluate_interval):
                await ctx.stop_requested.wait()


def _emit_all(tx: Tx, alerts: Sequence[Alert], now: float) -> None:
    for alert in alerts:
        emit_alert(tx, alert, at=now)
