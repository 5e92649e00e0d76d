"""Operator alerts for supervised children that fail, resolved when they run again.

The supervisor's transition hook is synchronous and must not block, so
:meth:`ChildAlerts.observe` only records what to write.  :meth:`ChildAlerts.run`
writes it in one journal transaction per batch: a critical alert with source
``supervisor`` and the child's name as its key when a child is marked failed,
and its resolution when the child runs again.  The first time a child runs in
this process also resolves an alert left open by an earlier process.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import Final, Literal, final

import msgspec
import trio

from plaudit.alerts import raise_alert, resolve_alert
from plaudit.daemon.supervisor import ChildState
from plaudit.errors import JournalError
from plaudit.journal import AsyncJournal, Tx

log = logging.getLogger(__name__)

SOURCE: Final = "supervisor"
# Seconds to wait before writing again after the journal refused a batch.
RETRY_SECONDS: Final = 5.0

Action = Literal["raise", "resolve"]


@final
class PendingAlert(msgspec.Struct, frozen=True, kw_only=True):
    """An alert change not yet written: raise for a failed child, or resolve."""

    action: Action
    error: str | None = None


@final
class ChildAlertStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """Counters of a :class:`ChildAlerts` since it started."""

    failed: tuple[str, ...]
    pending: int
    raised: int
    resolved: int


def decide(
    name: str, new: ChildState, error: BaseException | None, *, failed: bool, seen: bool
) -> PendingAlert | None:
    """Return the alert change for child ``name`` entering ``new``, or None (pure).

    ``failed`` is True while the child is marked failed, and ``seen`` is True
    once it has run in this process.
    """
    if new is ChildState.FAILED:
        return PendingAlert(action="raise", error=None if error is None else repr(error))
    if new is ChildState.RUNNING and (failed or not seen):
        return PendingAlert(action="resolve")
    return None


@final
class ChildAlerts:
    """Turns child transitions into operator alerts; see the module docstring."""

    def __init__(self) -> None:
        # Children failed now, by name.
        self.failed: set[str] = set()
        self._seen: set[str] = set()
        # The latest change per child, so a flapping child queues one write.
        self._pending: dict[str, PendingAlert] = {}
        self._wakeup = trio.Event()
        self._raised = 0
        self._resolved = 0

    def __repr__(self) -> str:
        return f"<ChildAlerts failed={sorted(self.failed)} pending={len(self._pending)}>"

    def statistics(self) -> ChildAlertStatistics:
        return ChildAlertStatistics(
            failed=tuple(sorted(self.failed)),
            pending=len(self._pending),
            raised=self._raised,
            resolved=self._resolved,
        )

    def observe(
        self, name: str, old: ChildState, new: ChildState, error: BaseException | None
    ) -> None:
        """Record one transition (a supervisor ``on_event`` hook); never blocks."""
        change = decide(name, new, error, failed=name in self.failed, seen=name in self._seen)
        if new is ChildState.FAILED:
            self.failed.add(name)
        elif new is ChildState.RUNNING:
            self.failed.discard(name)
            self._seen.add(name)
        if change is not None:
            self._pending[name] = change
            self._wakeup.set()

    async def run(self, journal: AsyncJournal) -> None:
        """Write pending alert changes until cancelled."""
        while True:
            await self._wakeup.wait()
            self._wakeup = trio.Event()
            batch = self._pending
            self._pending = {}
            try:
                await journal.transaction(partial(self._write, batch=batch))
            except JournalError as error:
                log.exception(
                    "supervisor.alert_write_failed",
                    extra={"children": sorted(batch), "error": str(error)},
                )
                # Keep the batch unless a newer change for the same child arrived meanwhile.
                self._pending = {**batch, **self._pending}
                await trio.sleep(RETRY_SECONDS)
                self._wakeup.set()

    def _write(self, tx: Tx, *, batch: dict[str, PendingAlert]) -> None:
        for name, change in batch.items():
            if change.action == "raise":
                raise_alert(
                    tx,
                    source=SOURCE,
                    key=name,
                    severity="critical",
                    summary=(
                        f"{name} failed after using up its restart budget and is stopped; "
                        "read its error in the log, fix the cause, then restart the daemon"
                    ),
                    detail={"child": name, "error": change.error},
                )
                self._raised += 1
            elif resolve_alert(tx, source=SOURCE, key=name):
                self._resolved += 1
