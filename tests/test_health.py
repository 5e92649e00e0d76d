"""Platform health: the decision step, uptime arithmetic, and the monitor on a real journal."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio
import trio.testing

from plaudit.actors.base import Actor, Effects
from plaudit.config.loader import load_config
from plaudit.daemon.children import ChildContext
from plaudit.daemon.ctl import render_health
from plaudit.errors import ConfigError, ReconnectRequiredError
from plaudit.journal import AsyncJournal, Job, Journal
from plaudit.metrics import REGISTRY
from plaudit.reliability.health import (
    BreakerObserved,
    HealthPolicy,
    HealthState,
    IncidentEscalated,
    IncidentOpened,
    IncidentResolved,
    JobObserved,
    PauseObserved,
    ReconnectObserved,
    StateChanged,
    SubjectHealth,
    decide,
    error_rate,
    latency_percentiles,
    uptime,
)
from plaudit.reliability.monitor import PlatformHealthMonitor

POLICY = HealthPolicy(window_seconds=60.0, degraded_ratio=0.2, minimum_jobs=5)
HOUR = 3600.0


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def ok(at: float, seconds: float = 1.0) -> JobObserved:
    return JobObserved(at=at, ok=True, seconds=seconds)


def failed(at: float) -> JobObserved:
    return JobObserved(at=at, ok=False, seconds=1.0, error="HTTP 503")


def run(subject: SubjectHealth, *observations: object) -> tuple[SubjectHealth, list[object]]:
    actions: list[object] = []
    for observation in observations:
        subject, new = decide(subject, observation, POLICY)  # type: ignore[arg-type]
        actions.extend(new)
    return subject, actions


# --- the decision step --------------------------------------------------------------------


def test_failure_degrades_and_opens_incident() -> None:
    subject, actions = run(SubjectHealth(platform="google"), ok(1), failed(2))
    assert subject.state is HealthState.DEGRADED
    assert subject.incident_open is True
    assert actions == [
        StateChanged(at=2, old=HealthState.HEALTHY, new=HealthState.DEGRADED, cause="HTTP 503"),
        IncidentOpened(at=2, state=HealthState.DEGRADED, cause="HTTP 503"),
    ]


def test_failures_in_a_row_mark_down() -> None:
    subject, _ = run(SubjectHealth(platform="google"), *(failed(at) for at in range(1, 5)))
    assert subject.state is HealthState.DEGRADED
    subject, actions = run(subject, failed(5))
    assert subject.state is HealthState.DOWN
    assert actions[0] == StateChanged(
        at=5,
        old=HealthState.DEGRADED,
        new=HealthState.DOWN,
        cause="5 jobs failed in a row: HTTP 503",
    )
    # A success ends the run of failures, but the error rate keeps the state degraded.
    subject, _ = run(subject, ok(6))
    assert subject.state is HealthState.DEGRADED


def test_failure_thresholds_configurable() -> None:
    policy = HealthPolicy(degraded_after_failures=2, down_after_failures=3)
    subject = SubjectHealth(platform="yelp")
    states = []
    for at in (1, 2, 3):
        subject, _ = decide(subject, failed(at), policy)
        states.append(subject.state)
    assert states == [HealthState.HEALTHY, HealthState.DEGRADED, HealthState.DOWN]


def test_health_table_sets_thresholds(tmp_path: Path) -> None:
    path = tmp_path / "plaudit.toml"
    path.write_text("[health]\ndown_after_failures = 3\nwindow_seconds = 300.0\n")
    config = load_config(path)
    assert config.health.down_after_failures == 3
    assert config.health.window_seconds == 300.0
    assert config.health.degraded_ratio == 0.2


def test_health_ratio_above_one_rejected(tmp_path: Path) -> None:
    path = tmp_path / "plaudit.toml"
    path.write_text("[health]\ndegraded_ratio = 1.5\n")
    with pytest.raises(ConfigError, match=r"health\.degraded_ratio"):
        load_config(path)


def test_breaker_escalates_then_recovery_resolves() -> None:
    subject, _ = run(SubjectHealth(platform="google"), failed(1))
    subject, actions = run(subject, BreakerObserved(at=2, tripped=True))
    assert subject.state is HealthState.DOWN
    assert [type(action) for action in actions] == [StateChanged, IncidentEscalated]

    subject, actions = run(subject, BreakerObserved(at=30, tripped=False))
    # Still one failure in a row: degraded until a job succeeds.
    assert subject.state is HealthState.DEGRADED
    subject, actions = run(subject, ok(31))
    assert subject.state is HealthState.HEALTHY
    assert actions[-1] == IncidentResolved(at=31)
    assert subject.incident_open is False


def test_pause_opens_no_incident() -> None:
    subject, actions = run(SubjectHealth(platform="google"), PauseObserved(at=1, paused=True))
    assert subject.state is HealthState.PAUSED
    assert [type(action) for action in actions] == [StateChanged]
    subject, actions = run(subject, PauseObserved(at=2, paused=False))
    assert subject.state is HealthState.HEALTHY
    assert [type(action) for action in actions] == [StateChanged]


def test_pause_takes_precedence() -> None:
    subject, _ = run(
        SubjectHealth(platform="google"),
        BreakerObserved(at=1, tripped=True),
        ReconnectObserved(at=2, required=True, error="invalid_grant"),
    )
    assert subject.state is HealthState.RECONNECT_REQUIRED
    assert subject.cause == "invalid_grant"
    subject, _ = run(subject, PauseObserved(at=3, paused=True))
    assert subject.state is HealthState.PAUSED
    subject, _ = run(subject, PauseObserved(at=4, paused=False))
    assert subject.state is HealthState.RECONNECT_REQUIRED


def test_error_ratio_degrades_until_aged_out() -> None:
    observations = [ok(1), failed(2), ok(3), ok(4), ok(5), ok(6)]
    subject, _ = run(SubjectHealth(platform="google"), *observations)
    # One failure in six is under 20 %.
    assert subject.state is HealthState.HEALTHY
    subject, _ = run(subject, failed(7), ok(8))
    # Two failures in eight reach 25 %, although the last job succeeded.
    assert subject.state is HealthState.DEGRADED
    assert error_rate(subject, POLICY, now=8) == pytest.approx(0.25)
    subject, _ = run(subject, *[ok(70 + index) for index in range(5)])
    assert subject.state is HealthState.HEALTHY


def test_latency_percentiles_nearest_rank() -> None:
    subject, _ = run(
        SubjectHealth(platform="google"),
        *[ok(index * 0.5, seconds=index) for index in range(1, 101)],
    )
    assert latency_percentiles(subject) == {"p50": 50, "p95": 95, "p99": 99}
    assert latency_percentiles(SubjectHealth(platform="google")) == {
        "p50": None,
        "p95": None,
        "p99": None,
    }


# --- uptime arithmetic ----------------------------------------------------------------------


def test_uptime_time_weighted() -> None:
    intervals = [("healthy", 0.0, 2700.0), ("down", 2700.0, 3600.0)]
    assert uptime(intervals, now=3600.0, window=HOUR) == pytest.approx(0.75)


def test_uptime_clips_to_window() -> None:
    intervals = [("down", 0.0, 7200.0), ("healthy", 7200.0, 10800.0)]
    assert uptime(intervals, now=10800.0, window=HOUR) == 1.0
    assert uptime(intervals, now=10800.0, window=2 * HOUR) == pytest.approx(0.5)


def test_uptime_leaves_out_paused_and_gaps() -> None:
    intervals = [
        ("degraded", 0.0, 600.0),
        ("paused", 600.0, 1800.0),
        # 1800-2400: the daemon was not running.
        ("reconnect-required", 2400.0, 3000.0),
    ]
    assert uptime(intervals, now=3600.0, window=HOUR) == pytest.approx(0.5)


def test_uptime_none_without_observations() -> None:
    assert uptime([], now=3600.0, window=HOUR) is None
    assert uptime([("paused", 0.0, 3600.0)], now=3600.0, window=HOUR) is None


# --- the monitor on a real journal -----------------------------------------------------------


@pytest.fixture
async def opened(tmp_path: Path) -> AsyncIterator[tuple[Journal, AsyncJournal]]:
    journal = Journal.open(tmp_path / "journal.sqlite3", instance="health-1")
    writer = AsyncJournal(journal)
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        yield journal, writer
        nursery.cancel_scope.cancel()
    journal.close()


async def start_monitor(writer: AsyncJournal, clock: Clock) -> PlatformHealthMonitor:
    monitor = PlatformHealthMonitor(writer, policy=POLICY, clock=clock)
    # run() restores open incidents before it reports started; that is all it does here.
    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:
            await nursery.start(monitor.run)
            scope.cancel()
    return monitor


async def test_incident_events_commit_with_row(opened: tuple[Journal, AsyncJournal]) -> None:
    journal, writer = opened
    clock = Clock()
    monitor = await start_monitor(writer, clock)
    monitor.register("google", ["accounts/1/locations/2"])
    monitor.observe_job("google", "accounts/1/locations/2", ok=False, seconds=1.0, error="HTTP 503")
    clock.now += 5
    monitor.observe_breaker("google", tripped=True)
    clock.now += 30
    monitor.observe_breaker("google", tripped=False)
    monitor.observe_job("google", "accounts/1/locations/2", ok=True, seconds=1.0)
    await monitor.flush()

    events = [event for event in journal.events() if event.platform == "google"]
    platform_events = [event.type for event in events if event.subject == "google"]
    assert platform_events == [
        "platform.degraded",
        "platform.down",
        "platform.degraded",
        "platform.recovered",
    ]
    profile_events = [event.type for event in events if event.subject != "google"]
    assert profile_events == platform_events

    report = await monitor.report()
    incidents = [row for row in report["incidents"] if row["profile"] == ""]
    assert len(incidents) == 1
    incident = incidents[0]
    assert incident["state"] == "degraded"
    assert incident["duration_seconds"] == pytest.approx(35.0)
    recovered = events[-1]
    assert recovered.payload["incident"] in {row["id"] for row in report["incidents"]}
    assert recovered.payload["duration_seconds"] == pytest.approx(35.0)


async def test_down_incident_alerts_until_recovery(
    opened: tuple[Journal, AsyncJournal],
) -> None:
    from plaudit.alerts import list_alerts

    journal, writer = opened
    clock = Clock()
    monitor = await start_monitor(writer, clock)
    monitor.register("google", ["accounts/1/locations/2"])
    monitor.observe_job("google", "accounts/1/locations/2", ok=False, seconds=1.0, error="HTTP 503")
    await monitor.flush()
    with journal.transaction() as tx:
        assert list_alerts(tx, open_only=True) == [], "a degraded platform alerts nobody"

    clock.now += 5
    monitor.observe_breaker("google", tripped=True)
    await monitor.flush()
    with journal.transaction() as tx:
        down = list_alerts(tx, open_only=True)
    assert {alert.key for alert in down} == {"google", "google/accounts/1/locations/2"}
    assert all(alert.severity == "critical" and "down" in alert.summary for alert in down)

    clock.now += 30
    monitor.observe_breaker("google", tripped=False)
    monitor.observe_job("google", "accounts/1/locations/2", ok=True, seconds=1.0)
    await monitor.flush()
    with journal.transaction() as tx:
        assert list_alerts(tx, open_only=True) == []
        assert len(list_alerts(tx)) == 2


async def test_state_metric_follows_platform(opened: tuple[Journal, AsyncJournal]) -> None:
    _, writer = opened
    monitor = await start_monitor(writer, Clock())
    monitor.register("metricsplat")
    monitor.observe_breaker("metricsplat", tripped=True)
    labels = {"platform": "metricsplat", "state": "down"}
    assert REGISTRY.get_sample_value("plaudit_platform_state", labels) == 1
    monitor.observe_breaker("metricsplat", tripped=False)
    assert REGISTRY.get_sample_value("plaudit_platform_state", labels) == 0
    await monitor.flush()
    labels = {"platform": "metricsplat", "window": "1h"}
    assert REGISTRY.get_sample_value("plaudit_platform_uptime_ratio", labels) is not None


async def test_uptime_survives_restart(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    clock = Clock()
    began = clock.now

    async def session(steps: list[tuple[float, bool | None]]) -> dict[str, object]:
        journal = Journal.open(path, instance="health-restart")
        writer = AsyncJournal(journal)
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(writer.run)
                monitor = await start_monitor(writer, clock)
                monitor.register("google")
                await monitor.flush()
                for seconds, tripped in steps:
                    clock.now += seconds
                    if tripped is not None:
                        monitor.observe_breaker("google", tripped=tripped)
                    await monitor.flush()
                report = await monitor.report()
                nursery.cancel_scope.cancel()
        finally:
            journal.close()
        return next(row for row in report["subjects"] if row["profile"] == "")

    # First run: 20 min up, then 10 min down, then the daemon stops.
    await session([(1200.0, True), (600.0, None)])
    # 30 minutes pass with no daemon, which counts as neither up nor down.
    clock.now += 1800.0
    # Second run: the breaker closes at once and stays closed for 30 minutes.
    second = await session([(0.0, False), (1800.0, None)])

    assert clock.now - began == pytest.approx(5400.0)
    uptimes = second["uptime"]
    assert isinstance(uptimes, dict)
    # 24 h: 50 of 60 observed minutes were up.
    assert uptimes["24h"] == pytest.approx(50 / 60)
    # 1 h: the last 30 minutes were up, and the 30 before them were the gap.
    assert uptimes["1h"] == pytest.approx(1.0)


async def test_open_incident_resolved_after_restart(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    clock = Clock()
    for outcome in (False, True):
        journal = Journal.open(path, instance="health-restart")
        writer = AsyncJournal(journal)
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(writer.run)
                monitor = await start_monitor(writer, clock)
                if outcome:
                    assert monitor.state_of("google") is HealthState.DEGRADED
                monitor.observe_job("google", "", ok=outcome, seconds=1.0, error="HTTP 500")
                await monitor.flush()
                nursery.cancel_scope.cancel()
        finally:
            journal.close()
        clock.now += 60

    journal = Journal.open(path, instance="health-check")
    try:
        types = [event.type for event in journal.events()]
    finally:
        journal.close()
    assert types == ["platform.degraded", "platform.recovered"]


async def test_watch_streams_changes(opened: tuple[Journal, AsyncJournal]) -> None:
    _, writer = opened
    monitor = await start_monitor(writer, Clock())
    monitor.register("google")
    seen: list[dict[str, object]] = []

    async def consume() -> None:
        async with contextlib.aclosing(monitor.watch()) as items:
            async for item in items:
                seen.append(item)
                if len(seen) == 3:
                    return

    async with trio.open_nursery() as nursery:
        nursery.start_soon(consume)
        await trio.testing.wait_all_tasks_blocked()
        monitor.observe_pause("google", paused=True)
        monitor.observe_pause("google", paused=False)

    assert [item["type"] for item in seen] == ["current", "state", "state"]
    assert [item["state"] for item in seen] == ["healthy", "paused", "healthy"]
    assert monitor.statistics().watchers == 0


def test_repr_and_statistics() -> None:
    monitor = PlatformHealthMonitor(None, clock=Clock())
    monitor.register("google", ["accounts/1/locations/2"])
    monitor.observe_breaker("google", tripped=True)
    assert repr(monitor) == "<PlatformHealthMonitor subjects=2 unhealthy=2 pending=0>"
    assert monitor.statistics().subjects == 2


# --- reconnect-required in the actor shell ---------------------------------------------------


class RevokedActor(Actor):
    """Raises ReconnectRequiredError until ``revoked`` is cleared."""

    kinds = ("revoked.job",)

    def __init__(self, journal: AsyncJournal, monitor: PlatformHealthMonitor) -> None:
        super().__init__("revoked", journal, lease_seconds=60.0, batch=1, monitor=monitor)
        self.revoked = True
        self.handled: list[int] = []

    async def handle(self, job: Job) -> Effects | None:
        self.handled.append(job.id)
        if self.revoked:
            raise ReconnectRequiredError("invalid_grant: reconnect the account")
        return None


async def test_reconnect_required_stops_claiming(opened: tuple[Journal, AsyncJournal]) -> None:
    journal, writer = opened
    monitor = await start_monitor(writer, Clock())
    actor = RevokedActor(writer, monitor)
    ids: list[int] = []
    for n in range(3):
        job_id = await writer.enqueue(
            kind="revoked.job", owner="revoked", key=f"revoked:{n}", payload={}
        )
        # None would mean the key existed already; these keys are new.
        assert job_id is not None
        ids.append(job_id)
    ctx = ChildContext("revoked")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(actor.start, ctx)
        with trio.fail_after(60):
            while not actor.reconnect_required:
                await trio.sleep(0.01)
        await trio.sleep(0.3)
        # One job ran into the revoked credentials; the others were not claimed.
        assert actor.handled == ids[:1]
        assert monitor.state_of("revoked") is HealthState.RECONNECT_REQUIRED

        actor.revoked = False
        actor.credentials_replaced()
        with trio.fail_after(60):
            while len(actor.handled) < 3:
                await trio.sleep(0.01)
        ctx.stop_requested.set()

    assert journal.get(ids[0]).state == "dead"
    assert [journal.get(job_id).state for job_id in ids[1:]] == ["succeeded", "succeeded"]
    assert monitor.state_of("revoked") is HealthState.HEALTHY


def test_health_table_rendered() -> None:
    result = {
        "subjects": [
            {
                "platform": "google",
                "profile": "",
                "state": "down",
                "breaker": "open",
                "since": 1_700_000_000.0,
                "cause": "circuit breaker open",
                "error_rate": 0.5,
                "latency_seconds": {"p95": 1.25},
                "uptime": {"1h": 0.75, "24h": None, "30d": 1.0},
            }
        ],
        "breakers": [{"name": "google", "state": "open", "open_remaining": 12.345}],
        "incidents": [{"id": 7, "platform": "google", "profile": "", "state": "down"}],
    }
    text = render_health(result)
    lines = text.splitlines()
    assert lines[0].split()[:4] == ["SUBJECT", "STATE", "BREAKER", "SINCE"]
    assert lines[1].split()[:3] == ["google", "down", "open"]
    assert "75.00%" in lines[1]
    assert "50.00%" in lines[1]
    assert "12.3" in text
    assert any(line.startswith("7 ") for line in lines)


async def test_clock_jump_not_counted(opened: tuple[Journal, AsyncJournal]) -> None:
    _, writer = opened
    clock = Clock()
    monitor = await start_monitor(writer, clock)
    monitor.register("google")
    await monitor.flush()
    clock.now += 600
    assert monitor.check_clock(wall_elapsed=600, monotonic_elapsed=600) is False
    await monitor.flush()
    monitor.observe_breaker("google", tripped=True)
    clock.now += 300
    await monitor.flush()

    # The wall clock leaps an hour ahead while 5 s pass.
    clock.now += 3600
    assert monitor.check_clock(wall_elapsed=3605, monotonic_elapsed=5) is True
    await monitor.flush()
    clock.now += 300
    await monitor.flush()

    report = await monitor.report()
    row = next(row for row in report["subjects"] if row["profile"] == "")
    # 10 min up, then 10 min down (5 before the jump, 5 after it); the leap is not counted.
    assert row["uptime"]["24h"] == pytest.approx(600 / 1200, rel=0.01)
    assert report["monitor"]["clock_jumps"] == 1


def test_backward_clock_jump_detected() -> None:
    monitor = PlatformHealthMonitor(None, clock=Clock())
    assert monitor.check_clock(wall_elapsed=-120, monotonic_elapsed=5) is True
    assert monitor.check_clock(wall_elapsed=5.5, monotonic_elapsed=5) is False
    assert monitor.statistics().clock_jumps == 1


async def test_full_journal_keeps_actions(
    opened: tuple[Journal, AsyncJournal], caplog: pytest.LogCaptureFixture
) -> None:
    journal, writer = opened
    monitor = await start_monitor(writer, Clock())
    monitor.register("google")
    await monitor.flush()
    pages = await writer.transaction(lambda tx: tx.execute("PRAGMA page_count").fetchone()[0])
    # SQLite reports SQLITE_FULL once the file would grow past max_page_count.
    await writer.transaction(lambda tx: tx.execute(f"PRAGMA max_page_count = {pages}"))
    for index in range(200):
        monitor.observe_job("google", f"profile-{index}", ok=False, seconds=1.0, error="x" * 500)
    await monitor.flush()

    assert monitor.statistics().journal_error is not None
    assert monitor.statistics().pending_writes > 0
    unwritable = [record for record in caplog.records if record.msg == "health.journal_unwritable"]
    assert len(unwritable) == 1
    assert unwritable[0].__dict__["disk_full"] is True

    await writer.transaction(lambda tx: tx.execute("PRAGMA max_page_count = 1073741823"))
    await monitor.flush()
    assert monitor.statistics().journal_error is None
    assert monitor.statistics().pending_writes == 0
    degraded = [event for event in journal.events(limit=1000) if event.type == "platform.degraded"]
    # The platform and its 200 profiles each opened one incident.
    assert len(degraded) == 201
