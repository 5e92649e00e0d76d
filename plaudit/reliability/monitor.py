"""PlatformHealthMonitor: the Trio shell around the health decision step.

Actors and breakers report observations synchronously (:meth:`observe_job`
and friends).  The monitor applies :func:`~plaudit.reliability.health.decide`
at once, so ``ctl health``, ``ctl watch`` and the metrics see a change
immediately, and queues the journal writes.  Its supervised task
(:meth:`run`) commits them: state intervals for uptime, incident rows, and the
``platform.degraded`` / ``platform.down`` / ``platform.recovered`` events in
the same transaction as the incident row they describe.  Every
``heartbeat`` seconds it also extends the current intervals, so a crash loses
at most that much observed time.
"""

from __future__ import annotations

import logging
import math
import sqlite3
import time
from collections.abc import AsyncGenerator, Callable, Iterable
from typing import Any, Final, final

import msgspec
import trio

from plaudit import metrics
from plaudit.errors import JournalError
from plaudit.journal import AsyncJournal, Tx
from plaudit.reliability.health import (
    UPTIME_WINDOWS,
    Action,
    BreakerObserved,
    HealthPolicy,
    HealthState,
    JobObserved,
    Observation,
    PauseObserved,
    ReconnectObserved,
    StateChanged,
    SubjectHealth,
    decide,
    error_rate,
    latency_percentiles,
    uptime,
)
from plaudit.reliability.incidents import (
    SubjectKey,
    apply_action,
    extend_intervals,
    read_incidents,
    read_intervals,
    read_open_incidents,
)

log = logging.getLogger(__name__)

# Queued actions beyond this are dropped (and counted) while the journal cannot be written.
MAX_PENDING: Final = 10_000
# Items a slow `ctl watch` client may fall behind before it is disconnected.
WATCH_BUFFER: Final = 256
# Seconds by which wall time may move apart from monotonic time between two
# heartbeats before it counts as a clock jump (NTP slews far less than this).
CLOCK_JUMP_SECONDS: Final = 30.0


@final
class MonitorStatistics(msgspec.Struct, frozen=True, kw_only=True):
    subjects: int
    pending_writes: int
    dropped_writes: int
    watchers: int
    flushes: int
    clock_jumps: int
    # The last journal write error, or None once writes succeed again.
    journal_error: str | None


@final
class PlatformHealthMonitor:
    """Health states, uptime and incidents of every platform and profile."""

    def __init__(
        self,
        journal: AsyncJournal | None = None,
        *,
        policy: HealthPolicy | None = None,
        clock: Callable[[], float] = time.time,
        heartbeat: float = 5.0,
    ) -> None:
        self.journal = journal
        self.policy = policy or HealthPolicy()
        self._clock = clock
        self.heartbeat = heartbeat
        self.started_at = clock()
        self._subjects: dict[SubjectKey, SubjectHealth] = {}
        self._pending: list[tuple[SubjectKey, Action]] = []
        self._dropped = 0
        self._flushes = 0
        self._dirty = trio.Event()
        # Journal row ids of each subject's current interval and open incident.
        self._interval_ids: dict[SubjectKey, int] = {}
        self._incident_ids: dict[SubjectKey, int] = {}
        self._watchers: set[trio.MemorySendChannel[dict[str, Any]]] = set()
        self._clock_jumps = 0
        # Unix time from which the intervals restart after a clock jump.
        self._restart_intervals_at: float | None = None
        self._journal_error: str | None = None

    def __repr__(self) -> str:
        unhealthy = sum(
            1 for subject in self._subjects.values() if subject.state is not HealthState.HEALTHY
        )
        return (
            f"<PlatformHealthMonitor subjects={len(self._subjects)} unhealthy={unhealthy} "
            f"pending={len(self._pending)}>"
        )

    def statistics(self) -> MonitorStatistics:
        return MonitorStatistics(
            subjects=len(self._subjects),
            pending_writes=len(self._pending),
            dropped_writes=self._dropped,
            watchers=len(self._watchers),
            flushes=self._flushes,
            clock_jumps=self._clock_jumps,
            journal_error=self._journal_error,
        )

    # Observations, called from actors and breakers.

    def register(self, platform: str, profiles: Iterable[str] = ()) -> None:
        """Track ``platform`` and its ``profiles``; known subjects keep their state."""
        for profile in ("", *profiles):
            key = (platform, profile)
            if key not in self._subjects:
                self._subjects[key] = SubjectHealth(
                    platform=platform, profile=profile, since=self._clock()
                )
                if not profile:
                    _export_state(platform, HealthState.HEALTHY)

    def observe_job(
        self, platform: str, profile: str, *, ok: bool, seconds: float, error: str | None = None
    ) -> None:
        """Record a finished job; ``ok`` False for a retryable platform failure."""
        observation = JobObserved(at=self._clock(), ok=ok, seconds=seconds, error=error)
        self._observe((platform, ""), observation)
        if profile:
            self.register(platform, [profile])
            self._observe((platform, profile), observation)

    def observe_breaker(self, platform: str, *, tripped: bool) -> None:
        self._observe_platform(platform, BreakerObserved(at=self._clock(), tripped=tripped))

    def observe_pause(self, platform: str, *, paused: bool) -> None:
        self._observe_platform(platform, PauseObserved(at=self._clock(), paused=paused))

    def observe_reconnect(self, platform: str, *, required: bool, error: str | None = None) -> None:
        observation = ReconnectObserved(at=self._clock(), required=required, error=error)
        self._observe_platform(platform, observation)

    def _observe_platform(self, platform: str, observation: Observation) -> None:
        self.register(platform)
        for key in [key for key in self._subjects if key[0] == platform]:
            self._observe(key, observation)

    def _observe(self, key: SubjectKey, observation: Observation) -> None:
        self.register(key[0], [key[1]] if key[1] else [])
        subject, actions = decide(self._subjects[key], observation, self.policy)
        self._subjects[key] = subject
        for action in actions:
            self._queue(key, action)
            if isinstance(action, StateChanged):
                self._announce(subject, action)

    def _queue(self, key: SubjectKey, action: Action) -> None:
        if self.journal is None:
            return
        if len(self._pending) >= MAX_PENDING:
            self._dropped += 1
            return
        self._pending.append((key, action))
        self._dirty.set()

    def _announce(self, subject: SubjectHealth, change: StateChanged) -> None:
        platform, profile = subject.platform, subject.profile
        level = logging.INFO if change.new is HealthState.HEALTHY else logging.WARNING
        log.log(
            level,
            "platform.health_changed",
            extra={
                "platform": platform,
                "profile": profile,
                "old": str(change.old),
                "new": str(change.new),
                "cause": change.cause,
            },
        )
        if not profile:
            _export_state(platform, change.new)
        item = {
            "type": "state",
            "platform": platform,
            "profile": profile,
            "old": str(change.old),
            "state": str(change.new),
            "cause": change.cause,
            "at": change.at,
        }
        for watcher in list(self._watchers):
            try:
                watcher.send_nowait(item)
            except (trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError):
                # A watcher that cannot keep up is cut off rather than slowing the actors.
                watcher.close()
                self._watchers.discard(watcher)

    # Reports.

    def states(self) -> list[dict[str, Any]]:
        """Return every subject's state and recent figures, platforms first."""
        now = self._clock()
        return [
            self._view(subject, now)
            for _, subject in sorted(self._subjects.items(), key=lambda item: item[0])
        ]

    def state_of(self, platform: str, profile: str = "") -> HealthState | None:
        subject = self._subjects.get((platform, profile))
        return None if subject is None else subject.state

    def _view(self, subject: SubjectHealth, now: float) -> dict[str, Any]:
        return {
            "platform": subject.platform,
            "profile": subject.profile,
            "state": str(subject.state),
            "since": subject.since,
            "cause": subject.cause,
            "last_success_at": subject.last_success_at,
            "last_error": subject.last_error,
            "error_rate": error_rate(subject, self.policy, now=now),
            "latency_seconds": latency_percentiles(subject),
        }

    async def report(self) -> dict[str, Any]:
        """Return :meth:`states` with uptimes, plus the open and the latest incidents."""
        now = self._clock()
        rows = self.states()
        monitor = msgspec.to_builtins(self.statistics())
        if self.journal is None:
            return {"subjects": rows, "incidents": [], "monitor": monitor}

        horizon = now - max(UPTIME_WINDOWS.values())
        # Read in a transaction of the journal's writer: it sees every committed
        # write, and commits nothing because it changes nothing.
        intervals, incidents = await self.journal.transaction(
            lambda tx: (read_intervals(tx, horizon), read_incidents(tx))
        )
        for row in rows:
            mine = intervals.get((row["platform"], row["profile"]), [])
            row["uptime"] = {
                name: uptime(mine, now=now, window=window)
                for name, window in UPTIME_WINDOWS.items()
            }
        return {"subjects": rows, "incidents": incidents, "monitor": monitor}

    async def watch(self) -> AsyncGenerator[dict[str, Any], None]:
        """Yield every subject's current state, then each state change as it happens."""
        send, receive = trio.open_memory_channel[dict[str, Any]](WATCH_BUFFER)
        self._watchers.add(send)
        try:
            now = self._clock()
            for subject in list(self._subjects.values()):
                yield {"type": "current", **self._view(subject, now)}
            async with receive:
                async for item in receive:
                    yield item
        finally:
            self._watchers.discard(send)
            send.close()

    # The supervised task.

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Restore open incidents, then commit queued writes and heartbeats until cancelled."""
        if self.journal is not None:
            await self._restore()
        task_status.started()
        last = (self._clock(), trio.current_time())
        while True:
            with trio.move_on_after(self.heartbeat):
                await self._dirty.wait()
            self._dirty = trio.Event()
            now = (self._clock(), trio.current_time())
            self.check_clock(wall_elapsed=now[0] - last[0], monotonic_elapsed=now[1] - last[1])
            last = now
            with trio.CancelScope(shield=True):
                await self.flush()

    def check_clock(self, *, wall_elapsed: float, monotonic_elapsed: float) -> bool:
        """Detect a wall-clock jump between two heartbeats, and return whether there was one.

        Uptime is measured in wall time, so after a jump the current
        intervals end where they last were extended, and new ones start at
        the new time: the jump itself counts as neither up nor down.
        """
        offset = wall_elapsed - monotonic_elapsed
        if abs(offset) <= CLOCK_JUMP_SECONDS:
            return False

        self._clock_jumps += 1
        self._restart_intervals_at = self._clock()
        log.warning(
            "health.clock_jumped",
            extra={"offset_seconds": round(offset, 3), "action": "check NTP on this host"},
        )
        return True

    async def _restore(self) -> None:
        """Reopen incidents that a previous run left unresolved, so a recovery resolves them."""
        assert self.journal is not None
        rows = await self.journal.transaction(read_open_incidents)
        for incident_id, platform, profile, state, cause in rows:
            key = (platform, profile)
            self.register(platform, [profile] if profile else [])
            self._subjects[key] = msgspec.structs.replace(
                self._subjects[key],
                state=HealthState(state),
                cause=f"open before restart: {cause}",
                incident_open=True,
            )
            self._incident_ids[key] = incident_id
            if not profile:
                _export_state(platform, HealthState(state))

    async def flush(self) -> None:
        """Commit the queued actions and extend the current intervals to now."""
        if self.journal is None:
            self._pending.clear()
            return

        batch, self._pending = self._pending, []
        subjects = dict(self._subjects)
        restart_at, self._restart_intervals_at = self._restart_intervals_at, None
        intervals = {} if restart_at is not None else dict(self._interval_ids)
        incidents = dict(self._incident_ids)
        now = self._clock()
        horizon = now - max(UPTIME_WINDOWS.values())

        def write(tx: Tx) -> dict[SubjectKey, list[tuple[str, float, float]]]:
            for key, action in batch:
                apply_action(tx, key, action, intervals, incidents)
            started_at = self.started_at if restart_at is None else restart_at
            extend_intervals(tx, subjects, intervals, now=now, started_at=started_at)
            return read_intervals(tx, horizon)

        try:
            history = await self.journal.transaction(write)
        except JournalError as error:
            self._write_failed(error, batch)
            if restart_at is not None:
                self._restart_intervals_at = restart_at
            return

        self._interval_ids, self._incident_ids = intervals, incidents
        if self._journal_error is not None:
            log.info("health.journal_writable_again", extra={"error": self._journal_error})
            self._journal_error = None
        self._flushes += 1
        self._export_uptime(history, now)

    def _write_failed(self, error: JournalError, batch: list[tuple[SubjectKey, Action]]) -> None:
        """Keep the batch for the next flush and log the failure once until it clears."""
        self._pending[:0] = batch[: max(0, MAX_PENDING - len(self._pending))]
        if self._journal_error is None:
            # A full disk or a failing device: the platforms may be fine, but
            # nothing new is recorded until the journal can be written.
            log.error(
                "health.journal_unwritable",
                extra={"error": str(error), "disk_full": disk_full(error)},
            )
        self._journal_error = str(error)

    def _export_uptime(
        self, history: dict[SubjectKey, list[tuple[str, float, float]]], now: float
    ) -> None:
        for platform, profile in self._subjects:
            if profile:
                continue
            mine = history.get((platform, ""), [])
            for name, window in UPTIME_WINDOWS.items():
                ratio = uptime(mine, now=now, window=window)
                metrics.PLATFORM_UPTIME.labels(platform, name).set(
                    math.nan if ratio is None else ratio
                )


def disk_full(error: BaseException) -> bool:
    """Return True when ``error`` or one of its causes is SQLite's SQLITE_FULL."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, sqlite3.Error) and cause.sqlite_errorname == "SQLITE_FULL":
            return True
        cause = cause.__cause__
    return False


def _export_state(platform: str, state: HealthState) -> None:
    for candidate in HealthState:
        metrics.PLATFORM_STATE.labels(platform, candidate.value).set(int(candidate is state))
