"""Rolling deliverability rates from the journal, their alerts and their gauges.

:func:`evaluate` is the pure step: stored events and the thresholds in, rates
per provider and recipient domain plus the alerts they raise out.  The
:class:`DeliverabilityMonitor` shell runs it every ``evaluate_interval``
seconds and sets ``plaudit_deliverability_rate`` per provider.  Recipient
domains appear only in ``ctl`` output, because as metric labels their number
would be unbounded.  Each threshold crossing opens one operator alert in the
journal (:mod:`plaudit.alerts`), is logged and is emitted as a
``deliverability.alert`` event once; the alert resolves at the first
evaluation that no longer finds the crossing.  Because the open alerts live
in the journal, a restart neither repeats nor forgets them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final, final, get_args

import msgspec
import trio

from plaudit.alerts import raise_alert, resolve_alert
from plaudit.config.model import DeliverabilityConfig
from plaudit.journal import AsyncJournal, Journal, Tx
from plaudit.messaging.deliverability.alerting import (
    ALERT_SOURCE,
    POLICY_PREFIX,
    RATE_PREFIX,
    open_alert_keys,
)
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
    rates = rolling_rates(events, now=now, windows=windows, thresholds=thresholds, by_domain=False)
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
    """Return the alerts whose operator alert keys are not in ``active``."""
    known = set(active)
    return [alert for alert in evaluation.alerts if RATE_PREFIX + alert.key not in known]


def settled_alerts(evaluation: Evaluation, active: Iterable[str], *, window: float) -> list[str]:
    """Return the open alert keys that ``evaluation`` no longer supports.

    A rate alert is settled when its crossing is gone; a policy-block alert
    when the recipient domain has no policy block within ``window`` seconds.
    """
    crossed = {RATE_PREFIX + alert.key for alert in evaluation.alerts}
    blocked = {
        rate.domain or "*"
        for rate in evaluation.rates
        if rate.window_seconds == window and rate.domain and rate.policy_blocks
    }
    return [key for key in sorted(active) if _is_settled(key, crossed, blocked)]


def _is_settled(key: str, crossed: set[str], blocked: set[str]) -> bool:
    if key.startswith(RATE_PREFIX):
        return key not in crossed
    if key.startswith(POLICY_PREFIX):
        return key.removeprefix(POLICY_PREFIX) not in blocked
    return False


def emit_alert(tx: Tx, alert: Alert, *, at: float) -> None:
    """Emit one ``deliverability.alert`` event; the key makes it once per alert and hour."""
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
    # Open deliverability alerts after the last evaluation, policy blocks included.
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
        self._active = 0
        self._evaluations = 0
        self._last: Evaluation | None = None

    def __repr__(self) -> str:
        return (
            f"<DeliverabilityMonitor evaluations={self._evaluations} active_alerts={self._active}>"
        )

    def statistics(self) -> MonitorStatistics:
        return MonitorStatistics(
            evaluations=self._evaluations,
            active_alerts=self._active,
            last_evaluated_at=None if self._last is None else self._last.at,
        )

    async def evaluate_once(self) -> Evaluation:
        """Rate the stored events now, update the gauges, then open and resolve alerts."""
        now = self._clock()
        config = self.settings()
        since = now - max(config.windows)
        events = await self.journal.read(lambda journal: load_events(journal, since=since))
        evaluation = evaluate(events, now=now, config=config)
        set_gauges(evaluation, window_seconds=min(config.windows))
        raised, self._active = await self.journal.transaction(
            lambda tx: _apply_alerts(tx, evaluation, window=min(config.windows))
        )
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


def _apply_alerts(tx: Tx, evaluation: Evaluation, *, window: float) -> tuple[list[Alert], int]:
    """Open the new crossings, resolve the settled ones; return those opened and the open count."""
    active = open_alert_keys(tx)
    raised = new_alerts(evaluation, active)
    for alert in raised:
        raise_alert(
            tx,
            source=ALERT_SOURCE,
            key=RATE_PREFIX + alert.key,
            severity="critical" if alert.level == "critical" else "warning",
            summary=_summary(alert),
            detail=msgspec.to_builtins(alert),
        )
        emit_alert(tx, alert, at=evaluation.at)
    settled = settled_alerts(evaluation, active, window=window)
    for key in settled:
        resolve_alert(tx, source=ALERT_SOURCE, key=key)
    return raised, len(active) + len(raised) - len(settled)


def _summary(alert: Alert) -> str:
    days = alert.window_seconds / 86400
    scope = f"{alert.provider} to {alert.domain or 'all domains'} over {days:g} days"
    return f"deliverability {alert.level} for {scope}: {'; '.join(alert.reasons)}"
