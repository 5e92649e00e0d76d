"""A supervised child that fails raises an operator alert; running again resolves it."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import trio

from plaudit.alerts import raise_alert
from plaudit.config import load_config, resolve_paths
from plaudit.daemon.app import Daemon
from plaudit.daemon.child_alerts import PendingAlert, decide
from plaudit.daemon.ctl import render_status
from plaudit.daemon.supervisor import (
    ChildContext,
    ChildSpec,
    ChildState,
    RestartPolicy,
    RestartType,
    Supervisor,
)
from plaudit.journal import AsyncJournal, Journal

POLICY = RestartPolicy(max_restarts=2, within_seconds=600.0, backoff_initial=0.01, backoff_max=0.02)


class Flaky:
    """A child that crashes at once until ``healthy`` is set, then runs until stopped."""

    def __init__(self) -> None:
        self.healthy = False

    async def start(self, ctx: ChildContext) -> None:
        if not self.healthy:
            raise RuntimeError("inbox table missing")
        ctx.started()
        await ctx.stop_requested.wait()


@pytest.fixture
def daemon(tmp_path: Path) -> Daemon:
    config_path = tmp_path / "plaudit.toml"
    config_path.write_text("")
    config = load_config(config_path)
    paths = resolve_paths(config, state_dir=str(tmp_path / "state"), runtime_dir=str(tmp_path))
    return Daemon(str(config_path), config, paths)


def committed(journal: Journal, sql: str) -> list[Any]:
    """Run ``sql`` on a connection of its own, which sees only committed transactions.

    The journal's own connection would also show a transaction its writer has not
    finished, such as an alert written before the job that sends it.
    """
    connection = sqlite3.connect(f"file:{journal.path}?mode=ro", uri=True)
    try:
        return connection.execute(sql).fetchall()
    finally:
        connection.close()


def alerts(journal: Journal) -> list[Any]:
    return committed(
        journal, "SELECT source, key, severity, resolved_at IS NOT NULL FROM alerts ORDER BY id"
    )


async def wait_for(condition: Any) -> None:
    with trio.fail_after(60):
        while not condition():
            await trio.sleep(0.01)


def test_decide_raises_on_failed() -> None:
    change = decide("inbound", ChildState.FAILED, RuntimeError("x"), failed=False, seen=True)
    assert change == PendingAlert(action="raise", error="RuntimeError('x')")


@pytest.mark.parametrize(
    ("failed", "seen", "expected"),
    [(True, True, "resolve"), (False, False, "resolve"), (False, True, None)],
)
def test_decide_on_running(failed: bool, seen: bool, expected: str | None) -> None:
    change = decide("inbound", ChildState.RUNNING, None, failed=failed, seen=seen)
    assert (None if change is None else change.action) == expected


def test_decide_ignores_backoff() -> None:
    assert decide("inbound", ChildState.BACKOFF, None, failed=False, seen=True) is None


async def test_failed_child_alert_then_resolved(
    daemon: Daemon, sync_journal: Journal, writer: AsyncJournal, autojump_clock: Any
) -> None:
    child = Flaky()
    supervisor = Supervisor(
        "root",
        [ChildSpec("inbound", child.start, policy=POLICY, signals_ready=True)],
        intensity=RestartPolicy(max_restarts=10, within_seconds=600.0),
        rng=random.Random(1),
        on_event=daemon._on_child_event,
    )
    daemon.supervisor = supervisor
    daemon.state = "running"
    async with trio.open_nursery() as nursery:
        nursery.start_soon(daemon.child_alerts.run, writer)
        nursery.start_soon(supervisor.run)
        await wait_for(lambda: alerts(sync_journal) == [("supervisor", "inbound", "critical", 0)])

        jobs = committed(sync_journal, "SELECT kind, owner FROM jobs")
        assert jobs == [("alert.send", "notifier")]
        assert daemon.failed_children() == ["inbound"]
        status = daemon.status()
        assert status["ready"] is False
        assert status["failed_children"] == ["inbound"]

        child.healthy = True
        await supervisor.restart("inbound")
        await wait_for(lambda: alerts(sync_journal) == [("supervisor", "inbound", "critical", 1)])
        assert daemon.failed_children() == []
        assert daemon.status()["ready"] is True
        assert daemon.child_alerts.statistics().resolved == 1
        await supervisor.stop()
        nursery.cancel_scope.cancel()


async def test_transient_child_failure_keeps_ready(
    daemon: Daemon, sync_journal: Journal, writer: AsyncJournal, autojump_clock: Any
) -> None:
    child = Flaky()
    spec = ChildSpec(
        "report", child.start, restart=RestartType.TRANSIENT, policy=POLICY, signals_ready=True
    )
    supervisor = Supervisor(
        "root",
        [spec],
        intensity=RestartPolicy(max_restarts=10, within_seconds=600.0),
        rng=random.Random(1),
        on_event=daemon._on_child_event,
    )
    daemon.supervisor = supervisor
    daemon.state = "running"
    async with trio.open_nursery() as nursery:
        nursery.start_soon(daemon.child_alerts.run, writer)
        nursery.start_soon(supervisor.run)
        await wait_for(lambda: len(alerts(sync_journal)) == 1)
        # Only a failed permanent child makes the daemon not ready.
        assert daemon.failed_children() == []
        assert daemon.status()["ready"] is True
        await supervisor.stop()
        nursery.cancel_scope.cancel()


async def test_first_run_resolves_alert_of_earlier_process(
    daemon: Daemon, sync_journal: Journal, writer: AsyncJournal
) -> None:
    await writer.transaction(
        lambda tx: raise_alert(
            tx, source="supervisor", key="inbound", severity="critical", summary="failed"
        )
    )
    daemon.child_alerts.observe("inbound", ChildState.STARTING, ChildState.RUNNING, None)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(daemon.child_alerts.run, writer)
        await wait_for(lambda: alerts(sync_journal) == [("supervisor", "inbound", "critical", 1)])
        nursery.cancel_scope.cancel()


def test_status_renders_failed_children() -> None:
    text = render_status(
        {"daemon": {"state": "running", "ready": False, "failed_children": ["inbound"]}}
    )
    lines = [line.split() for line in text.splitlines()]
    assert ["ready", "no"] in lines
    assert ["failed", "inbound"] in lines


def test_status_omits_failed_when_none() -> None:
    text = render_status({"daemon": {"state": "running", "ready": True, "failed_children": []}})
    assert "failed" not in text
