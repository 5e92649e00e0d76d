"""Circuit breakers: stop calling a failing platform, then probe it once.

A breaker is closed while calls mostly succeed.  It opens on either trigger:
``failure_threshold`` consecutive failures, or a failure share of at least
``failure_ratio`` among the calls of the last ``window_seconds`` once there
are ``minimum_calls`` of them.  While open, callers wait instead of calling.
When the open interval ends the breaker is half-open and admits exactly one
probe: its success closes the breaker, its failure opens it again for twice
the previous interval, up to ``open_max``.

The breaker does no I/O and reads time only through the clock it is given,
so the state machine is tested on a virtual clock.
"""

from __future__ import annotations

import collections
import enum
import logging
from collections.abc import Callable
from typing import Final, final

import msgspec

from plaudit import metrics
from plaudit.config.model import BreakerConfig
from plaudit.errors import IllegalTransitionError

log = logging.getLogger(__name__)


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


_ALLOWED: Final = {
    BreakerState.CLOSED: frozenset({BreakerState.OPEN}),
    BreakerState.OPEN: frozenset({BreakerState.HALF_OPEN}),
    BreakerState.HALF_OPEN: frozenset({BreakerState.CLOSED, BreakerState.OPEN}),
}

BreakerListener = Callable[[str, BreakerState, BreakerState], None]
"""Called with the breaker's name, the old state and the new state after each transition."""


@final
class BreakerStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """A point-in-time view of a breaker for ``ctl health``, metrics and tests."""

    name: str
    state: str
    consecutive_failures: int
    # Calls and failures within the ratio window.
    window_calls: int
    window_failures: int
    # Seconds the current or next open interval lasts.
    open_seconds: float
    # Seconds until a probe is admitted; 0 unless open.
    open_remaining: float
    probe_in_flight: bool
    times_opened: int


@final
class CircuitBreaker:
    """A circuit breaker for one platform or endpoint; see the module docstring."""

    def __init__(
        self,
        name: str,
        config: BreakerConfig,
        *,
        clock: Callable[[], float],
        on_change: BreakerListener | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self._clock = clock
        self._on_change = on_change
        self._state = BreakerState.CLOSED
        self._consecutive = 0
        # (time, failed) per call, oldest first, pruned to the window.
        self._window: collections.deque[tuple[float, bool]] = collections.deque()
        self._open_seconds = config.open_initial
        self._open_until = 0.0
        self._probe_in_flight = False
        self._times_opened = 0
        _export(name, self._state)

    def __repr__(self) -> str:
        return (
            f"<CircuitBreaker {self.name} {self._state} consecutive={self._consecutive} "
            f"open_seconds={self._open_seconds:g}>"
        )

    @property
    def state(self) -> BreakerState:
        """The current state; an open breaker whose interval has ended reads as half-open."""
        self._advance()
        return self._state

    def open_remaining(self) -> float:
        """Return the seconds until a probe is admitted: 0 unless the breaker is open."""
        self._advance()
        if self._state is not BreakerState.OPEN:
            return 0.0

        return max(0.0, self._open_until - self._clock())

    def allow(self) -> bool:
        """Return True when a call may go ahead now; a half-open breaker admits one probe."""
        self._advance()
        if self._state is BreakerState.CLOSED:
            return True

        if self._state is BreakerState.HALF_OPEN and not self._probe_in_flight:
            self._probe_in_flight = True
            return True

        return False

    def record_success(self) -> None:
        """Record a call that succeeded; a successful probe closes the breaker."""
        self._advance()
        self._consecutive = 0
        if self._state is BreakerState.HALF_OPEN:
            self._probe_in_flight = False
            self._open_seconds = self.config.open_initial
            self._window.clear()
            self._transition(BreakerState.CLOSED)
            return

        self._add_to_window(failed=False)

    def record_failure(self) -> None:
        """Record a failed call; it may open the breaker, and a failed probe re-opens it."""
        self._advance()
        self._consecutive += 1
        if self._state is BreakerState.HALF_OPEN:
            self._probe_in_flight = False
            self._open_seconds = min(self._open_seconds * 2, self.config.open_max)
            self._open(cause="probe failed")
            return

        if self._state is BreakerState.OPEN:
            # A call that was already under way when the breaker opened.
            return

        self._add_to_window(failed=True)
        cause = self._trigger()
        if cause is not None:
            self._open_seconds = self.config.open_initial
            self._open(cause=cause)

    def release_probe(self) -> None:
        """Give back an admitted probe that ended without a verdict (for example, cancelled)."""
        self._probe_in_flight = False

    def statistics(self) -> BreakerStatistics:
        self._advance()
        self._prune()
        failures = sum(1 for _, failed in self._window if failed)
        return BreakerStatistics(
            name=self.name,
            state=self._state.value,
            consecutive_failures=self._consecutive,
            window_calls=len(self._window),
            window_failures=failures,
            open_seconds=self._open_seconds,
            open_remaining=self.open_remaining(),
            probe_in_flight=self._probe_in_flight,
            times_opened=self._times_opened,
        )

    def _trigger(self) -> str | None:
        """Return why the breaker must open now, or None when it stays closed."""
        config = self.config
        if self._consecutive >= config.failure_threshold:
            return f"{self._consecutive} consecutive failures"

        self._prune()
        calls = len(self._window)
        failures = sum(1 for _, failed in self._window if failed)
        if calls >= config.minimum_calls and failures / calls >= config.failure_ratio:
            return f"{failures} of {calls} calls failed within {config.window_seconds:g} s"

        return None

    def _open(self, *, cause: str) -> None:
        self._open_until = self._clock() + self._open_seconds
        self._times_opened += 1
        self._transition(BreakerState.OPEN)
        log.warning(
            "breaker.opened",
            extra={"breaker": self.name, "cause": cause, "open_seconds": self._open_seconds},
        )

    def _advance(self) -> None:
        """Move an open breaker whose interval has ended to half-open."""
        if self._state is BreakerState.OPEN and self._clock() >= self._open_until:
            self._transition(BreakerState.HALF_OPEN)

    def _add_to_window(self, *, failed: bool) -> None:
        self._window.append((self._clock(), failed))
        self._prune()

    def _prune(self) -> None:
        horizon = self._clock() - self.config.window_seconds
        while self._window and self._window[0][0] < horizon:
            self._window.popleft()

    def _transition(self, new: BreakerState) -> None:
        old = self._state
        check_transition(self.name, old, new)
        self._state = new
        _export(self.name, new)
        if new is not BreakerState.OPEN:
            log.info("breaker.state_changed", extra={"breaker": self.name, "state": str(new)})
        if self._on_change is not None:
            self._on_change(self.name, old, new)


def check_transition(name: str, old: BreakerState, new: BreakerState) -> None:
    """Raise IllegalTransitionError unless a breaker may go from ``old`` to ``new``."""
    if new not in _ALLOWED[old]:
        allowed = ", ".join(sorted(_ALLOWED[old]))
        raise IllegalTransitionError(
            f"circuit breaker {name}: cannot go from {old} to {new}; from {old} it can go to "
            f"{allowed} only"
        )


def _export(name: str, state: BreakerState) -> None:
    for candidate in BreakerState:
        metrics.BREAKER_STATE.labels(name, candidate.value).set(int(candidate is state))
