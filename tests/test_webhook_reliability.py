"""Webhook delivery under faults: operator alerts, batched outcomes, redirects, drip-fed replies.

The actor tests share the virtual-clock harness of ``test_webhook_delivery``:
a real journal file, the loopback receiver and the actor in one Trio run.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from plaudit.actors.webhooks import WebhookActor
from plaudit.alerts import ALERT_JOB
from plaudit.connectors.tls import shared_ssl_context
from plaudit.errors import JournalError
from plaudit.journal import AsyncJournal, Journal
from plaudit.metrics import REGISTRY
from plaudit.sandbox.receiver import Fault, FaultKind
from plaudit.webhooks import records
from plaudit.webhooks.batching import DeliveredBatcher
from plaudit.webhooks.clients import ClientKey, EndpointClients
from plaudit.webhooks.delivery import AttemptResult, Decision, EndpointHealth, Outcome, decide
from plaudit.webhooks.router import Router
from tests.test_webhook_delivery import START, emit, endpoint, harness, read


@pytest.fixture
def clock() -> trio.testing.MockClock:
    # As in test_webhook_delivery: jump only after 20 ms of real idleness.
    return trio.testing.MockClock(autojump_threshold=0.02)


def alerts(path: Path) -> list[dict[str, Any]]:
    rows = read(path, "SELECT source, key, severity, summary, detail, resolved_at FROM alerts")
    names = ("source", "key", "severity", "summary", "detail", "resolved_at")
    return [dict(zip(names, row, strict=True)) for row in rows]


def alert_jobs(path: Path) -> list[str]:
    return [str(row[0]) for row in read(path, f"SELECT key FROM jobs WHERE kind = '{ALERT_JOB}'")]


def disables(reason: str) -> float:
    name = "plaudit_webhook_endpoint_disables_total"
    return REGISTRY.get_sample_value(name, {"reason": reason}) or 0.0


# Operator alerts


async def test_gone_alerts_operator(tmp_path: Path, clock: trio.testing.MockClock) -> None:
    before = disables("gone")
    async with harness(tmp_path, clock, [Fault(FaultKind.STATUS, status=410)]) as h:
        await h.emit(1)
        await h.wait_until(lambda: h.job_states() == ["dead"], seconds=100)

    [alert] = alerts(h.path)
    assert alert["source"] == "webhooks"
    assert alert["key"] == "endpoint_disabled:crm"
    assert alert["severity"] == "critical"
    assert "410 Gone" in alert["summary"]
    assert "plaudit ctl webhooks --enable crm" in alert["summary"]
    assert json.loads(alert["detail"])["cause"] == "gone"
    assert alert["resolved_at"] is None
    assert len(alert_jobs(h.path)) == 1
    assert disables("gone") - before == 1


async def test_failing_alert_sent_once(tmp_path: Path, clock: trio.testing.MockClock) -> None:
    """A second disable while the alert is open counts a repeat and sends nothing new."""
    before = disables("failing")
    faults = [Fault(FaultKind.STATUS, status=500)] * 4
    async with harness(tmp_path, clock, faults, retry_schedule=(30.0,), disable_after=20.0) as h:
        await h.emit(1)
        await h.wait_until(lambda: h.job_states() == ["dead"], seconds=1000)
        await h.actor.enable("crm")
        await h.emit(2)
        await h.wait_until(lambda: h.job_states() == ["dead", "dead"], seconds=1000)

    outcomes = [row["outcome"] for row in h.attempts()]
    assert outcomes == ["retry", "disabled", "retry", "disabled"]
    first, second = alerts(h.path)
    # Enabling resolved the first alert, so the second disable opened a new one.
    assert first["resolved_at"] is not None
    assert second["resolved_at"] is None
    assert json.loads(second["detail"])["cause"] == "failing"
    assert "every delivery failed" in second["summary"]
    assert len(alert_jobs(h.path)) == 2
    assert disables("failing") - before == 2


def test_disable_alert_repeats_while_open(tmp_path: Path) -> None:
    journal = Journal.open(tmp_path / "journal.sqlite3")
    try:
        for _ in range(3):
            with journal.transaction() as tx:
                records.alert_disabled(tx, "crm", reason="gone", stopped=0, status=410)
        with journal.transaction() as tx:
            records.enable_endpoint(tx, "crm")
    finally:
        journal.close()

    [alert] = alerts(tmp_path / "journal.sqlite3")
    assert alert["resolved_at"] is not None
    assert len(alert_jobs(tmp_path / "journal.sqlite3")) == 1
    repeats = read(tmp_path / "journal.sqlite3", "SELECT repeats FROM alerts")
    assert repeats == [(2,)]


# Batched outcomes


async def test_concurrent_successes_share_commits(
    tmp_path: Path, clock: trio.testing.MockClock
) -> None:
    async with harness(tmp_path, clock, max_in_flight=8) as h:
        await h.emit(*range(1, 41))
        await h.wait_until(lambda: h.job_states().count("succeeded") == 40, seconds=100)
        statistics = h.actor.batcher_statistics()

    attempts = h.attempts()
    assert len(attempts) == 40
    assert {row["outcome"] for row in attempts} == {"delivered"}
    assert len({row["event_key"] for row in attempts}) == 40
    assert statistics.recorded == 40
    assert statistics.lease_lost == 0
    assert len(h.receiver.accepted_ids()) == 40


def delivered(job: Any, now: float) -> records.Delivered:
    decision = Decision(Outcome.DELIVERED, EndpointHealth(last_success_at=now))
    return records.Delivered(job, AttemptResult(200, 3.0), decision)


def test_batch_skips_lost_lease(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    journal = Journal.open(path, clock=lambda: START)
    journal.set_emit_hooks([Router([endpoint()])])
    try:
        with journal.transaction() as tx:
            for number in (1, 2, 3):
                emit(tx, number)
        jobs = journal.claim("webhooks", limit=3, lease_seconds=60)
        # The second job's lease is lost: another worker took it back.
        journal.release(jobs[1].id)

        with journal.transaction() as tx:
            completed = records.record_delivered(tx, [delivered(job, START) for job in jobs])
    finally:
        journal.close()

    assert completed == {jobs[0].id, jobs[2].id}
    states = read(path, "SELECT id, state FROM jobs ORDER BY id")
    assert states == [(jobs[0].id, "succeeded"), (jobs[1].id, "ready"), (jobs[2].id, "succeeded")]
    logged = read(path, "SELECT job_id, outcome FROM webhook_attempts ORDER BY job_id")
    assert logged == [(jobs[0].id, "delivered"), (jobs[2].id, "delivered")]
    health = read(path, "SELECT name, state, last_success_at FROM webhook_endpoints")
    assert health == [("crm", "enabled", START)]


# Receivers that misbehave


@pytest.mark.parametrize("status", [301, 303, 307, 308])
async def test_redirect_statuses_not_followed(
    tmp_path: Path, clock: trio.testing.MockClock, status: int
) -> None:
    async with harness(tmp_path, clock, [Fault(FaultKind.STATUS, status=status)]) as h:
        await h.emit(1)
        await h.wait_until(lambda: h.job_states() == ["succeeded"], seconds=100)

    first, second = h.attempts()
    assert first["status"] == status
    assert first["outcome"] == "retry"
    assert "redirects are not followed" in first["error"]
    assert second["outcome"] == "delivered"
    # Both requests went to the configured URL; nothing followed a Location.
    assert len(h.receiver.received) == 2


async def drip_server(*, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
    """Respond to every request with a status line sent one byte per second."""

    async def handle(stream: trio.SocketStream) -> None:
        await stream.receive_some(65536)
        for byte in b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n":
            await stream.send_all(bytes([byte]))
            await trio.sleep(1.0)

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.serve_listeners, handle, listeners)
        task_status.started(f"http://127.0.0.1:{port}")


async def test_drip_response_hits_timeout(tmp_path: Path, clock: trio.testing.MockClock) -> None:
    """A receiver that sends a byte now and then cannot stretch an attempt past its timeout."""
    async with trio.open_nursery() as servers:
        url = await servers.start(drip_server)
        async with harness(tmp_path, clock, target_url=f"{url}/hook") as h:
            await h.emit(1)
            await h.wait_until(lambda: len(h.attempts()) >= 1, seconds=100)
        servers.cancel_scope.cancel()

    first = h.attempts()[0]
    assert first["status"] is None
    assert first["error"] == "timed out after 15 s"
    assert first["latency_ms"] == pytest.approx(15_000, abs=100)
    assert first["outcome"] == "retry"


# Clients and the batcher


def test_clients_rebuilt_on_change(tmp_path: Path) -> None:
    journal = Journal.open(tmp_path / "journal.sqlite3")
    try:
        target = endpoint(max_in_flight=2)
        actor = WebhookActor(AsyncJournal(journal), [target], lease_seconds=60.0)
        first = actor._clients_for(target)
        same = actor._clients_for(target)
        moved = actor._clients_for(replace(target, url="http://127.0.0.1:10/hook"))
    finally:
        journal.close()

    assert same is first
    assert moved is not first
    assert moved.key.url == "http://127.0.0.1:10/hook"


async def test_clients_reuse_idle_connection() -> None:
    clients = EndpointClients(ClientKey("http://127.0.0.1:9/hook", "", 2), shared_ssl_context())
    first = clients.checkout()
    second = clients.checkout()
    clients.checkin(first)
    again = clients.checkout()
    await clients.aclose()

    assert second is not first
    assert again is first
    assert first.is_closed
    assert second.is_closed


async def test_batcher_joins_concurrent_outcomes(tmp_path: Path) -> None:
    """Outcomes recorded in the same scheduler pass share one journal write."""
    path = tmp_path / "journal.sqlite3"
    journal = Journal.open(path, clock=lambda: START)
    journal.set_emit_hooks([Router([endpoint()])])
    recorded: list[bool] = []
    try:
        with journal.transaction() as tx:
            for number in range(1, 11):
                emit(tx, number)
        jobs = journal.claim("webhooks", limit=10, lease_seconds=60)
        async with trio.open_nursery() as nursery:
            writer = AsyncJournal(journal)
            await nursery.start(writer.run)
            batcher = DeliveredBatcher(writer)

            async def record(job: Any) -> None:
                recorded.append(await batcher.record(delivered(job, START)))

            async with trio.open_nursery() as recorders:
                for job in jobs:
                    recorders.start_soon(record, job)
            nursery.cancel_scope.cancel()
    finally:
        journal.close()

    assert recorded == [True] * 10
    assert batcher.statistics().batches == 1
    assert batcher.statistics().max_batch_size == 10
    states = read(path, "SELECT state FROM jobs WHERE kind = 'webhook.deliver'")
    assert states == [("succeeded",)] * 10
    assert read(path, "SELECT count(*) FROM webhook_attempts") == [(10,)]


async def test_batcher_fails_without_writer(tmp_path: Path) -> None:
    journal = Journal.open(tmp_path / "journal.sqlite3", clock=lambda: START)
    journal.set_emit_hooks([Router([endpoint()])])
    try:
        with journal.transaction() as tx:
            emit(tx, 1)
        [job] = journal.claim("webhooks", limit=1, lease_seconds=60)
        batcher = DeliveredBatcher(AsyncJournal(journal))
        with pytest.raises(JournalError, match=f"recording delivered webhook job {job.id}"):
            await batcher.record(delivered(job, START))
        state = journal.get(job.id).state
    finally:
        journal.close()

    # Nothing was written: the job stays leased until it is retried or recovered.
    assert str(state) == "running"
    assert batcher.statistics().recorded == 0


# Rate limit per endpoint


async def test_rate_limit_spaces_attempts(tmp_path: Path, clock: trio.testing.MockClock) -> None:
    """Two attempts a second: a burst of two, then one every half second."""
    async with harness(tmp_path, clock, max_in_flight=4, max_per_second=2.0) as h:
        await h.emit(*range(1, 11))
        await h.wait_until(lambda: h.job_states().count("succeeded") == 10, seconds=100)

    times = sorted(row["at"] for row in h.attempts())
    assert len(times) == 10
    for number in range(1, 10):
        assert times[number] - times[0] >= (number - 1) * 0.5 - 0.01
    assert times[-1] - times[0] <= 4.0 + 1.0
    assert len(h.receiver.received) == 10


async def test_rate_wait_releases_on_stop(tmp_path: Path, clock: trio.testing.MockClock) -> None:
    """Jobs waiting for the rate limit go back to ready when the actor stops."""
    async with harness(tmp_path, clock, max_per_second=0.01) as h:
        await h.emit(1, 2, 3)
        await h.wait_until(lambda: "succeeded" in h.job_states(), seconds=100)
        # The next token is 100 s away, so the others wait in the lane.
        await trio.sleep(5.0)
        assert h.job_states().count("running") == 2

    assert h.job_states() == ["succeeded", "ready", "ready"]
    assert h.actor.statistics().jobs_released == 2
    assert len(h.receiver.received) == 1


async def test_gone_not_undone_by_success(tmp_path: Path, clock: trio.testing.MockClock) -> None:
    """A success that finishes after a concurrent 410 leaves the endpoint disabled."""
    faults = [Fault(FaultKind.SLOW, seconds=1.0), Fault(FaultKind.STATUS, status=410)]
    async with harness(tmp_path, clock, faults, max_in_flight=2) as h:
        await h.emit(1, 2)
        await h.wait_until(lambda: sorted(h.job_states()) == ["dead", "succeeded"], seconds=100)
        health = h.actor.endpoint_health["crm"]

    assert [row["outcome"] for row in h.attempts()] == ["disabled", "delivered"]
    assert health.disabled
    assert read(h.path, "SELECT state FROM webhook_endpoints") == [("disabled",)]


def test_decide_keeps_disabled_health() -> None:
    disabled = EndpointHealth(disabled=True, disabled_reason="410 Gone")
    decision = decide(
        AttemptResult(200, 3.0), attempt=1, endpoint=endpoint(), health=disabled, now=START
    )

    assert decision.outcome is Outcome.DELIVERED
    assert decision.health.disabled
    assert decision.health.disabled_reason == "410 Gone"
    assert decision.health.last_success_at == START
