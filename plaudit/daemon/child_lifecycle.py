"""The lifecycle of a supervised child: its states, legal transitions and restart types."""

from __future__ import annotations

from enum import StrEnum
from typing import Final

from plaudit.errors import IllegalTransitionError


class RestartType(StrEnum):
    """When a child that ended is started again (the OTP restart types)."""

    PERMANENT = "permanent"
    TRANSIENT = "transient"
    TEMPORARY = "temporary"

    def restarts_after(self, error: BaseException | None) -> bool:
        """Return whether a child of this type that ended with ``error`` is restarted.

        Permanent children are always restarted, transient ones only after an
        exception, and temporary ones never.
        """
        if self is RestartType.PERMANENT:
            return True
        if self is RestartType.TRANSIENT:
            return error is not None
        return False


class ChildState(StrEnum):
    """Lifecycle of a supervised child, and of a supervisor itself."""

    STARTING = "starting"
    RUNNING = "running"
    BACKOFF = "backoff"
    STOPPING = "stopping"
    STOPPED = "stopped"
    FAILED = "failed"


_TRANSITIONS: Final[dict[ChildState, frozenset[ChildState]]] = {
    ChildState.STOPPED: frozenset({ChildState.STARTING}),
    ChildState.STARTING: frozenset(
        {
            ChildState.RUNNING,
            ChildState.BACKOFF,
            ChildState.STOPPING,
            ChildState.STOPPED,
            ChildState.FAILED,
        }
    ),
    ChildState.RUNNING: frozenset(
        {ChildState.BACKOFF, ChildState.STOPPING, ChildState.STOPPED, ChildState.FAILED}
    ),
    ChildState.BACKOFF: frozenset({ChildState.STARTING, ChildState.STOPPED, ChildState.FAILED}),
    # An escalating supervisor stops its children first and then fails.
    ChildState.STOPPING: frozenset({ChildState.STOPPED, ChildState.FAILED}),
    # Only an operator restart, or a parent restarting a subtree, leaves FAILED.
    ChildState.FAILED: frozenset({ChildState.STARTING}),
}

ACTIVE_STATES: Final = frozenset(
    {ChildState.STARTING, ChildState.RUNNING, ChildState.BACKOFF, ChildState.STOPPING}
)


def check_transition(old: ChildState, new: ChildState) -> None:
    """Raise IllegalTransitionError unless a child may move from ``old`` to ``new``."""
    allowed = _TRANSITIONS[old]
    if new not in allowed:
        targets = ", ".join(sorted(allowed))
        raise IllegalTransitionError(
            f"illegal transition from {old} to {new}. A child in state {old} "
            f"can only move to {targets}"
        )
