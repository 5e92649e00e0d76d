"""Deliverability rates, alerts and gauges, and ``plaudit ctl deliverability`` on a real daemon."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import msgspec
import pytest
import trio

from plaudit.config.model import Config, DeliverabilityConfig
from plaudit.journal import AsyncJournal, Journal
from plaudit.messaging.deliverability.ctl import render_deliverability
from plaudit.messaging.deliverability.monitor import DeliverabilityMonitor, evaluate
from plaudit.messaging.deliverability.service import report
from plaudit.messaging.deliverability.store import record_event
from plaudit.messaging.deliverability.suppression import MessageEvent, SuppressionPolicy
from plaudit.metrics import REGISTRY
from tests.support import (
    DaemonDirs,
    ctl,
    open_daemon,
    query,
    run_actor_until,
    stop_daemon,
    wait_for,
)
from tests.support_mail import write_deliverability_config
from tests.test_bounce_mailbox import dsn

NOW = 1_800_000_000.0
HOUR = 3600.0
CONFIG = DeliverabilityConfig(min_attempts=10, windows=[86400.0, 7 * 86400.0])


def make_event(kind: str, address: str, *, at: float = NOW - HOUR, provider: str = "smtp") -> Any:
    return msgspec.convert(
        {"address": address, "kind": kind, "at": at, "provider": provider}, MessageEvent
    )


def traffic(domain: str, *, delivered: int, hard: int = 0, complaints: int = 0) -> list[Any]:
    events = [make_event("accepted", f"s{i}@{domain}") for i in range(delivered + hard)]
    events += [make_event("delivered", f"s{i}@{domain}") for i in range(delivered)]
    events += [make_event("hard_bounce", f"h{i}@{domain}") for i in range(hard)]
    events += [make_event("complaint", f"s{i}@{domain}") for i in range(complaints)]
    return events


def test_rates_per_provider_and_domain() -> None:
    events = traffic("good.test", delivered=100) + traffic("bad.test", delivered=95, hard=5)
    evaluation = evaluate(events, now=NOW, config=CONFIG)

    day = {
        (rate.provider, rate.domain): rate
        for rate in evaluation.rates
        if rate.window_seconds == 86400.0
    }
    assert day[("smtp", "")].attempts == 200
    assert day[("smtp", "")].hard_bounce_rate == pytest.approx(5 / 200)
    assert day[("smtp", "good.test")].delivery_rate == 1.0
    assert day[("smtp", "bad.test")].hard_bounce_rate == pytest.approx(0.05)
    assert day[("smtp", "bad.test")].level == "alert"


def test_alerts_per_scope_and_window() -> None:
    events = traffic("bad.test", delivered=95, hard=5)
    evaluation = evaluate(events, now=NOW, config=CONFIG)

    keys = {alert.key for alert in evaluation.alerts}
    assert keys == {
        "smtp/*/86400/alert",
        "smtp/*/604800/alert",
        "smtp/bad.test/86400/alert",
        "smtp/bad.test/604800/alert",
    }


def test_complaint_critical_threshold() -> None:
    events = traffic("isp.test", delivered=1000, complaints=3)
    evaluation = evaluate(events, now=NOW, config=CONFIG)
    levels = {alert.level for alert in evaluation.alerts}
    assert levels == {"critical"}


def test_low_volume_raises_no_alert() -> None:
    events = traffic("small.test", delivered=2, hard=2)
    assert evaluate(events, now=NOW, config=CONFIG).alerts == ()


def test_events_outside_windows_ignored() -> None:
    old = [make_event("hard_bounce", "x@old.test", at=NOW - 30 * 86400.0)]
    assert evaluate(old, now=NOW, config=CONFIG).rates == ()


async def store(writer: AsyncJournal, events: list[Any]) -> None:
    policy = SuppressionPolicy()

    def write(tx: Any) -> None:
        for event in events:
            record_event(tx, event, policy=policy)

    await writer.transaction(write)


async def test_monitor_sets_gauges_and_alerts_once(
    writer: AsyncJournal, sync_journal: Journal, caplog: pytest.LogCaptureFixture
) -> None:
    provider = "monitor-test"
    events = [
        msgspec.structs.replace(event, provider=provider)
        for event in traffic("bad.test", delivered=90, hard=10)
    ]
    await store(writer, events)
    monitor = DeliverabilityMonitor(writer, lambda: CONFIG, clock=lambda: NOW)

    with caplog.at_level(logging.WARNING):
        await monitor.evaluate_once()
        await monitor.evaluate_once()

    gauge = "plaudit_deliverability_rate"
    labels = {"provider": provider}
    assert REGISTRY.get_sample_value(gauge, {**labels, "kind": "hard_bounce"}) == pytest.approx(0.1)
    assert REGISTRY.get_sample_value(gauge, {**labels, "kind": "delivery"}) == pytest.approx(0.9)
    rows = sync_journal.query("SELECT payload FROM events WHERE type = 'deliverability.alert'")
    # Two scopes (provider, domain) over two windows, emitted by the first evaluation only.
    assert len(rows) == 4
    assert {json.loads(row[0])["level"] for row in rows} == {"alert"}
    logged = [record for record in caplog.records if record.msg == "deliverability.alert"]
    assert len(logged) == 4
    assert monitor.statistics().evaluations == 2
    assert monitor.statistics().active_alerts == 4


async def test_report_counts_suppressions(writer: AsyncJournal, sync_journal: Journal) -> None:
    events = traffic("bad.test", delivered=10, hard=2, complaints=1)
    for event in events:
        status = "5.1.1" if event.kind == "hard_bounce" else None
        await store(writer, [msgspec.structs.replace(event, status=status)])

    result = report(sync_journal, Config(deliverability=CONFIG), now=NOW)
    assert result["suppressions"] == {"complaint": 1, "hard_bounce": 2}
    assert result["thresholds"]["complaint_alert"] == 0.001
    assert result["windows"] == [86400.0, 7 * 86400.0]
    text = render_deliverability(result)
    assert "suppressed addresses: complaint 1, hard_bounce 2" in text
    assert "bad.test" in text


@pytest.mark.slow
async def test_ctl_deliverability_on_daemon(tmp_path: Path) -> None:
    """A bounce in the Maildir shows in ``ctl deliverability``; each wait allows 60 s."""
    dirs = DaemonDirs(tmp_path)
    write_deliverability_config(dirs)
    (dirs.state / "bounces" / "new" / "2001.a.host").write_bytes(dsn("k@guest.test", "5.1.1"))
    process = await open_daemon(dirs)
    try:
        await wait_for(
            lambda: query(dirs.journal, "SELECT reason FROM suppressions"),
            timeout=60,
            what="the bounce to be recorded",
        )
        await wait_for(
            lambda: query(
                dirs.journal, "SELECT id FROM events WHERE type = 'deliverability.alert'"
            ),
            timeout=60,
            what="the hard-bounce alert",
        )
        as_json = ctl(dirs, "--json", "deliverability")
        as_text = ctl(dirs, "deliverability")
    finally:
        status = await stop_daemon(process)

    assert status == 0, dirs.log.read_text()
    assert as_json.returncode == 0, as_json.stderr
    result = json.loads(as_json.stdout)
    assert result["suppressions"] == {"hard_bounce": 1}
    domains = {rate["domain"] for rate in result["rates"]}
    assert domains == {"", "guest.test"}
    assert any(alert["domain"] == "guest.test" for alert in result["alerts"])
    assert as_text.returncode == 0, as_text.stderr
    assert "guest.test" in as_text.stdout
    assert "hard-bounce rate 100.00%" in as_text.stdout
    assert list((dirs.state / "bounces" / "cur").iterdir())


async def test_unknown_event_kind_skipped(writer: AsyncJournal, sync_journal: Journal) -> None:
    await store(writer, traffic("isp.test", delivered=3))

    def insert(tx: Any) -> None:
        tx.execute(
            "INSERT INTO message_events (address, domain, kind, status, provider,"
            " provider_event_id, message_id, occurred_at, recorded_at)"
            " VALUES ('r@isp.test', 'isp.test', 'forwarded', NULL, 'smtp', NULL, NULL, ?, ?)",
            (NOW - HOUR, NOW),
        )

    await writer.transaction(insert)
    result = report(sync_journal, Config(deliverability=CONFIG), now=NOW)
    provider_day = next(rate for rate in result["rates"] if rate["domain"] == "")
    assert provider_day["delivered"] == 3
    assert provider_day["attempts"] == 3


async def test_monitor_evaluates_until_stopped(writer: AsyncJournal) -> None:
    """Real time, because the journal reads run in a worker thread; the bound is 30 s."""
    config = msgspec.structs.replace(CONFIG, evaluate_interval=0.05)
    monitor = DeliverabilityMonitor(writer, lambda: config, clock=lambda: NOW)
    await run_actor_until(
        monitor, lambda: monitor.statistics().evaluations >= 3, name="deliverability", timeout=30
    )

    evaluations = monitor.statistics().evaluations
    assert evaluations >= 3
    # The loop ends at the stop request without another evaluation.
    await trio.sleep(0.2)
    assert monitor.statistics().evaluations == evaluations
