"""Restart budgets: the backoff and intensity policy, and the sliding window that counts restarts.

Every time is a ``trio.current_time()`` reading passed in by the caller, so the
decisions here need no clock and no Trio run.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass
from enum import StrEnum
from typing import Final, final

from plaudit.config.model import SupervisorConfig

_CONFIG_DEFAULTS: Final = SupervisorConfig()


# Each restart waits for a random fraction between 1 - jitter and 1 of its
# exponential delay, so children that crashed together do not restart together.
DEFAULT_JITTER: Final = 0.2

# 2 ** 64 times any sensible initial delay is far past backoff_max, and the cap
# keeps a large restart number from overflowing the float.
_MAX_BACKOFF_EXPONENT: Final = 64


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class RestartPolicy:
    """Restart intensity and backoff of one child, or the intensity of a supervisor.

    More than ``max_restarts`` restarts within a sliding window of
    ``within_seconds`` exhaust the budget.  The delay before restart ``n`` of
    the window is ``min(backoff_max, backoff_initial * 2 ** (n - 1))`` seconds
    times a random factor in ``[1 - jitter, 1]``.  A supervisor uses only
    ``max_restarts`` and ``within_seconds`` of its own policy.
    """

    max_restarts: int = _CONFIG_DEFAULTS.max_restarts
    within_seconds: float = _CONFIG_DEFAULTS.within_seconds
    backoff_initial: float = _CONFIG_DEFAULTS.backoff_initial
    backoff_max: float = _CONFIG_DEFAULTS.backoff_max
    jitter: float = DEFAULT_JITTER

    def __post_init__(self) -> None:
        if self.max_restarts < 0:
            raise ValueError(f"max_restarts must be 0 or more, got {self.max_restarts}")
        if self.within_seconds <= 0:
            raise ValueError(f"within_seconds must be above 0, got {self.within_seconds}")
        if self.backoff_initial < 0:
            raise ValueError(f"backoff_initial must be 0 or more, got {self.backoff_initial}")
        if self.backoff_max < self.backoff_initial:
            raise ValueError(
                f"backoff_max {self.backoff_max} is below backoff_initial "
                f"{self.backoff_initial}. Raise backoff_max or lower backoff_initial"
            )
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError(f"jitter must be a fraction from 0 to 1, got {self.jitter}")

    @classmethod
    def from_config(cls, cfg: SupervisorConfig, *, jitter: float = DEFAULT_JITTER) -> RestartPolicy:
        """Build the policy of the ``[supervisor]`` table, which has no jitter key."""
        return cls(
            max_restarts=cfg.max_restarts,
            within_seconds=cfg.within_seconds,
            backoff_initial=cfg.backoff_initial,
            backoff_max=cfg.backoff_max,
            jitter=jitter,
        )

    def backoff(self, restart: int, rng: random.Random) -> float:
        """Return the delay in seconds before restart number ``restart`` (from 1) of the window."""
        exponent = min(max(restart - 1, 0), _MAX_BACKOFF_EXPONENT)
        ceiling = min(self.backoff_max, self.backoff_initial * 2.0**exponent)
        return ceiling * rng.uniform(1.0 - self.jitter, 1.0)


DEFAULT_POLICY: Final = RestartPolicy()


@final
class RestartWindow:
    """Restart times within the last ``within_seconds``, oldest first."""

    __slots__ = ("_max_restarts", "_times", "_within")

    def __init__(self, policy: RestartPolicy) -> None:
        self._max_restarts = policy.max_restarts
        self._within = policy.within_seconds
        self._times: deque[float] = deque()

    def allows(self, now: float) -> bool:
        """Return whether one more restart at ``now`` stays within the budget."""
        while self._times and self._times[0] <= now - self._within:
            self._times.popleft()
        return len(self._times) < self._max_restarts

    def record(self, now: float) -> int:
        """Record a restart and return how many the window now holds."""
        self._times.append(now)
        return len(self._times)

    def reset(self) -> None:
        self._times.clear()

    def __len__(self) -> int:
        return len(self._times)


class RestartVerdict(StrEnum):
    """Outcome of the restart budgets for a child that ended and is due for a restart."""

    RESTART = "restart"
    # The child's own budget is spent: the child is marked failed.
    FAIL = "fail"
    # The supervisor's intensity is spent: the whole subtree stops and escalates.
    ESCALATE = "escalate"


@final
@dataclass(frozen=True, slots=True)
class RestartDecision:
    """The verdict, and for RESTART the restart's number within the child's window (from 1)."""

    verdict: RestartVerdict
    restart_number: int = 0


def decide_restart(
    child_window: RestartWindow, supervisor_window: RestartWindow, now: float
) -> RestartDecision:
    """Check a restart at ``now`` against the child's budget, then the supervisor's intensity.

    Only an admitted restart is recorded, in both windows.
    """
    if not child_window.allows(now):
        return RestartDecision(RestartVerdict.FAIL)
    if not supervisor_window.allows(now):
        return RestartDecision(RestartVerdict.ESCALATE)

    restart_number = child_window.record(now)
    supervisor_window.record(now)
    return RestartDecision(RestartVerdict.RESTART, restart_number)
