"""Webhook delivery: decisions, fan-out in the event's transaction, and the actor over real HTTP.

The actor tests run a real journal file, the loopback receiver and the actor
in one Trio run on a virtual clock that also drives the journal's clock, so
attempt times in the journal are exact.
"""

from __future__ import annotations

import base64
import itertools
import json
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from plaudit.actors.webhooks import WebhookActor
from plaudit.config import load_config
from plaudit.config.model import DEFAULT_WEBHOOK_SCHEDULE
from plaudit.daemon.children import ChildContext
from plaudit.daemon.ctl import build_parser, render, request_args
from plaudit.errors import ConfigError
from plaudit.journal import AsyncJournal, Journal, Tx
from plaudit.metrics import REGISTRY
from plaudit.sandbox.receiver import Fault, FaultKind, Receiver, serve_receiver
from plaudit.webhooks.delivery import (
    AttemptResult,
    EndpointHealth,
    Outcome,
    decide,
    delivery_body,
)
from plaudit.webhooks.endpoints import Endpoint, build_endpoints
from plaudit.webhooks.router import Router, delivery_key, webhook_id
from plaudit.webhooks.signing import Secret

# 2026-01-01T00:00:00Z.
START = 1_767_225_600.0
SECRET = Secret.parse("whsec_" + base64.b64encode(bytes(range(32))).decode())
DAY = 86400.0


def endpoint(name: str = "crm", url: str = "http://127.0.0.1:9/hook", **fields: Any) -> Endpoint:
    values: dict[str, Any] = {
        "name": name,
        "url": url,
        "secrets": (SECRET,),
        "events": ("*",),
        "enabled": True,
        "retry_schedule": DEFAULT_WEBHOOK_SCHEDULE,
        "timeout": 15.0,
        "disable_after": 5 * DAY,
        "allow_private": True,
    }
    values.update(fields)
    return Endpoint(**values)


# Decisions


def failure(status: int | None = 500) -> AttemptResult:
    return AttemptResult(status, 12.0, None if status else "ConnectError: refused")


def test_schedule_delays_are_exact() -> None:
    target = endpoint()
    delays = []
    for attempt in range(1, target.max_attempts):
        decision = decide(
            failure(), attempt=attempt, endpoint=target, health=EndpointHealth(), now=START
        )
        assert decision.outcome is Outcome.RETRY
        delays.append(decision.retry_in)

    assert delays == [5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0]


def test_last_attempt_goes_dead() -> None:
    target = endpoint()
    decision = decide(
        failure(), attempt=target.max_attempts, endpoint=target, health=EndpointHealth(), now=START
    )

    assert decision.outcome is Outcome.DEAD
    assert decision.retry_in is None


def test_success_clears_failure_run() -> None:
    failing = EndpointHealth(failing_since=START - 100)
    decision = decide(
        AttemptResult(204, 3.0), attempt=3, endpoint=endpoint(), health=failing, now=START
    )

    assert decision.outcome is Outcome.DELIVERED
    assert decision.health.failing_since is None
    assert decision.health.last_success_at == START


def test_gone_disables_at_once() -> None:
    decision = decide(
        failure(410), attempt=1, endpoint=endpoint(), health=EndpointHealth(), now=START
    )

    assert decision.outcome is Outcome.DISABLED
    assert decision.health.disabled
    assert "410 Gone" in (decision.health.disabled_reason or "")


def test_five_days_of_failure_disable() -> None:
    target = endpoint()
    almost = EndpointHealth(failing_since=START - 5 * DAY + 1)
    over = EndpointHealth(failing_since=START - 5 * DAY)

    kept = decide(failure(), attempt=1, endpoint=target, health=almost, now=START)
    disabled = decide(failure(), attempt=1, endpoint=target, health=over, now=START)

    assert kept.outcome is Outcome.RETRY
    assert disabled.outcome is Outcome.DISABLED
    assert "5 days" in (disabled.health.disabled_reason or "")


def test_failure_run_starts_at_first_failure() -> None:
    decision = decide(failure(), attempt=1, endpoint=endpoint(), health=EndpointHealth(), now=START)

    assert decision.health.failing_since == START


def test_redirect_is_a_failure() -> None:
    decision = decide(failure(302), attempt=1, endpoint=endpoint(), health=EndpointHealth(), now=0)

    assert decision.outcome is Outcome.RETRY
    assert "redirects are not followed" in (decision.error or "")


def test_permanent_error_goes_dead() -> None:
    result = AttemptResult(None, 0.0, "forbidden", permanent=True)
    decision = decide(result, attempt=1, endpoint=endpoint(), health=EndpointHealth(), now=0)

    assert decision.outcome is Outcome.DEAD


def test_body_is_deterministic() -> None:
    payload = {"type": "review.created", "created_at": START + 0.25, "data": {"b": 1, "a": [2]}}

    body = delivery_body(payload)

    assert body == delivery_body(dict(payload))
    assert json.loads(body) == {
        "type": "review.created",
        "timestamp": "2026-01-01T00:00:00.250Z",
        "data": {"b": 1, "a": [2]},
    }


# Fan-out in the emitting transaction


def emit(tx: Tx, number: int, event_type: str = "review.created") -> bool:
    return tx.emit(
        type=event_type,
        key=f"{event_type}:google:r{number}",
        platform="google",
        subject=f"r{number}",
        payload={"change": "created", "review": {"review_id": f"r{number}"}},
    )


@pytest.fixture
def journal(tmp_path: Path) -> Any:
    opened = Journal.open(tmp_path / "journal.sqlite3", clock=lambda: START)
    yield opened
    opened.close()


def delivery_jobs(journal: Journal) -> list[Any]:
    return journal.jobs(kind="webhook.deliver", limit=1000)


def test_emit_enqueues_one_job_per_endpoint(journal: Journal) -> None:
    journal.set_emit_hooks([Router([endpoint("crm"), endpoint("sheet")])])

    with journal.transaction() as tx:
        emit(tx, 1)

    jobs = sorted(delivery_jobs(journal), key=lambda job: job.key)
    assert [job.key for job in jobs] == [
        delivery_key("crm", "review.created:google:r1"),
        delivery_key("sheet", "review.created:google:r1"),
    ]
    assert jobs[0].payload["webhook_id"] == webhook_id("crm", "review.created:google:r1")
    assert jobs[0].max_attempts == 8


def test_rollback_drops_event_and_jobs(journal: Journal) -> None:
    journal.set_emit_hooks([Router([endpoint()])])

    with pytest.raises(RuntimeError), journal.transaction() as tx:
        emit(tx, 1)
        raise RuntimeError("the review write failed")

    assert delivery_jobs(journal) == []
    assert journal.events() == []


def test_repeated_event_enqueues_nothing(journal: Journal) -> None:
    journal.set_emit_hooks([Router([endpoint()])])

    with journal.transaction() as tx:
        assert emit(tx, 1)
    with journal.transaction() as tx:
        assert not emit(tx, 1)

    assert len(delivery_jobs(journal)) == 1


def test_event_filters_and_disabled_endpoints(journal: Journal) -> None:
    router = Router(
        [
            endpoint("created", events=("review.created",)),
            endpoint("reviews", events=("review.*",)),
            endpoint("off", enabled=False),
        ]
    )
    journal.set_emit_hooks([router])

    with journal.transaction() as tx:
        emit(tx, 1, "review.created")
        emit(tx, 2, "review.deleted")

    keys = sorted(job.key for job in delivery_jobs(journal))
    assert keys == [
        "webhook:created:review.created:google:r1",
        "webhook:reviews:review.created:google:r1",
        "webhook:reviews:review.deleted:google:r2",
    ]


def test_webhook_id_is_stable_per_endpoint() -> None:
    assert webhook_id("crm", "k") == webhook_id("crm", "k")
    assert webhook_id("crm", "k") != webhook_id("sheet", "k")
    assert webhook_id("crm", "k").startswith("msg_")


# The actor over real HTTP, on a virtual clock


def read(path: Path, sql: str) -> list[tuple[Any, ...]]:
    """Query the journal file on a connection of its own (WAL lets it read beside the writer)."""
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return connection.execute(sql).fetchall()
    finally:
        connection.close()


@dataclass
class Harness:
    path: Path
    journal: AsyncJournal
    receiver: Receiver
    actor: WebhookActor
    url: str
    clock: trio.testing.MockClock

    def now(self) -> float:
        return START + self.clock.current_time()

    async def emit(self, *numbers: int) -> None:
        def write(tx: Tx) -> None:
            for number in numbers:
                emit(tx, number)

        await self.journal.transaction(write)
        self.actor.wake()

    def attempts(self) -> list[dict[str, Any]]:
        rows = read(
            self.path,
            "SELECT event_key, attempt, status_code, latency_ms, error, outcome, attempted_at "
            "FROM webhook_attempts ORDER BY id",
        )
        names = ("event_key", "attempt", "status", "latency_ms", "error", "outcome", "at")
        return [dict(zip(names, row, strict=True)) for row in rows]

    def job_states(self) -> list[str]:
        rows = read(self.path, "SELECT state FROM jobs WHERE kind = 'webhook.deliver' ORDER BY id")
        return [str(row[0]) for row in rows]

    async def wait_until(self, predicate: Callable[[], object], *, seconds: float) -> None:
        """Sleep on the virtual clock until ``predicate`` holds, at most ``seconds``.

        Checks 200 times over ``seconds``, because every virtual sleep costs
        the clock's real-time jump threshold.
        """
        with trio.fail_after(seconds):
            while not predicate():
                await trio.sleep(seconds / 200)


@pytest.fixture
def clock() -> trio.testing.MockClock:
    # Jump only after 20 ms of real idleness, so loopback I/O and journal
    # commits finish before virtual time moves on.
    return trio.testing.MockClock(autojump_threshold=0.02)


@asynccontextmanager
async def harness(
    tmp_path: Path,
    clock: trio.testing.MockClock,
    faults: Sequence[Fault] = (),
    lease_seconds: float = 600.0,
    target_url: str | None = None,
    **endpoint_fields: Any,
) -> AsyncIterator[Harness]:
    """Run the actor against the loopback receiver, or against ``target_url`` when given."""
    path = tmp_path / "journal.sqlite3"
    journal = Journal.open(path, clock=lambda: START + clock.current_time())
    receiver = Receiver(secrets=[SECRET], clock=lambda: START + clock.current_time())
    receiver.add_faults(faults)
    context = ChildContext("webhooks")
    try:
        async with trio.open_nursery() as nursery:
            url = await nursery.start(serve_receiver, receiver)
            target = endpoint(url=target_url or f"{url}/hook", **endpoint_fields)
            journal.set_emit_hooks([Router([target])])
            # No group-commit window: its short wait would move the virtual clock.
            async_journal = AsyncJournal(journal, window=0)
            await nursery.start(async_journal.run)
            actor = WebhookActor(
                async_journal,
                [target],
                lease_seconds=lease_seconds,
                # Emits wake the actor and retries set their own wait, so the
                # poll only matters as a fallback.
                poll_interval=100_000.0,
                clock=lambda: START + clock.current_time(),
            )
            # The actor stops (and hands back its jobs) before the journal writer does.
            async with trio.open_nursery() as actors:
                actors.start_soon(actor.start, context)
                yield Harness(path, async_journal, receiver, actor, url, clock)
                context.stop_requested.set()
            nursery.cancel_scope.cancel()
    finally:
        journal.close()


async def test_delivers_signed_event(tmp_path: Path, clock: trio.testing.MockClock) -> None:
    async with harness(tmp_path, clock) as h:
        await h.emit(1)
        await h.wait_until(lambda: h.job_states() == ["succeeded"], seconds=30)

    [request] = h.receiver.received
    assert request.verify_error is None
    assert request.status == 200
    assert request.webhook_id == webhook_id("crm", "review.created:google:r1")
    assert request.headers["content-type"] == "application/json"
    body = json.loads(request.body)
    assert body["type"] == "review.created"
    assert body["data"]["review"] == {"review_id": "r1"}
    [attempt] = h.attempts()
    assert attempt["attempt"] == 1
    assert attempt["status"] == 200
    assert attempt["outcome"] == "delivered"


async def test_retries_follow_schedule_exactly(
    tmp_path: Path, clock: trio.testing.MockClock
) -> None:
    faults = [Fault(FaultKind.STATUS, status=500)] * 8
    async with harness(tmp_path, clock, faults) as h:
        await h.emit(1)
        await h.wait_until(lambda: h.job_states() == ["dead"], seconds=200_000)

    attempts = h.attempts()
    times = [row["at"] for row in attempts]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert [row["attempt"] for row in attempts] == [1, 2, 3, 4, 5, 6, 7, 8]
    assert gaps == list(DEFAULT_WEBHOOK_SCHEDULE)
    assert [row["outcome"] for row in attempts] == ["retry"] * 7 + ["dead"]
    assert all(row["status"] == 500 for row in attempts)
    assert len(h.receiver.received) == 8
    # Every attempt carries the same id, so the receiver can drop repeats.
    assert len({item.webhook_id for item in h.receiver.received}) == 1


async def test_recovers_after_failures(tmp_path: Path, clock: trio.testing.MockClock) -> None:
    faults = [Fault(FaultKind.STATUS, status=503), Fault(FaultKind.RESET)]
    async with harness(tmp_path, clock, faults) as h:
        await h.emit(1)
        await h.wait_until(lambda: h.job_states() == ["succeeded"], seconds=1000)
        health = h.actor.endpoint_health["crm"]

    assert [row["outcome"] for row in h.attempts()] == ["retry", "retry", "delivered"]
    assert h.attempts()[1]["status"] is None
    assert health.failing_since is None


async def test_gone_disables_endpoint(
    tmp_path: Path, clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    faults = [Fault(FaultKind.SLOW, seconds=1.0), Fault(FaultKind.STATUS, status=410)]
    async with harness(tmp_path, clock, faults) as h:
        # Two events: the first request takes 1 s, so both are claimed together.
        await h.emit(1, 2, 3)
        await h.wait_until(lambda: "ready" not in h.job_states(), seconds=100)
        await h.wait_until(
            lambda: "crm" in h.actor.webhook_statistics().disabled_endpoints, seconds=100
        )
        await h.emit(4)
        await h.wait_until(lambda: h.job_states().count("dead") == 3, seconds=100)

    assert sorted(h.job_states()) == ["dead", "dead", "dead", "succeeded"]
    # The third and fourth events were never sent: the endpoint was gone.
    assert len(h.receiver.received) == 2
    assert "webhook.endpoint_disabled" in [record.msg for record in caplog.records]
    rows = read(h.path, "SELECT state, disabled_reason FROM webhook_endpoints")
    assert rows[0][0] == "disabled"
    assert "410" in rows[0][1]


async def test_redirect_not_followed(tmp_path: Path, clock: trio.testing.MockClock) -> None:
    async with harness(tmp_path, clock, [Fault(FaultKind.REDIRECT)]) as h:
        await h.emit(1)
        await h.wait_until(lambda: h.job_states() == ["succeeded"], seconds=100)

    first, second = h.attempts()
    assert first["status"] == 302
    assert "redirects are not followed" in first["error"]
    assert second["outcome"] == "delivered"
    assert len(h.receiver.received) == 2


async def test_hanging_receiver_times_out(tmp_path: Path, clock: trio.testing.MockClock) -> None:
    async with harness(tmp_path, clock, [Fault(FaultKind.HANG)]) as h:
        await h.emit(1)
        await h.wait_until(lambda: h.job_states() == ["succeeded"], seconds=100)

    first, second = h.attempts()
    assert first["error"] == "timed out after 15 s"
    assert first["latency_ms"] == pytest.approx(15_000, abs=100)
    # The retry comes 5 s after the attempt that timed out was recorded.
    assert second["at"] - first["at"] == 5.0


async def test_slow_response_within_timeout(tmp_path: Path, clock: trio.testing.MockClock) -> None:
    async with harness(tmp_path, clock, [Fault(FaultKind.SLOW, seconds=10.0)]) as h:
        await h.emit(1)
        await h.wait_until(lambda: h.job_states() == ["succeeded"], seconds=100)

    [attempt] = h.attempts()
    assert attempt["outcome"] == "delivered"


async def test_garbage_responses(tmp_path: Path, clock: trio.testing.MockClock) -> None:
    faults = [Fault(FaultKind.GARBAGE), Fault(FaultKind.OK_GARBAGE)]
    async with harness(tmp_path, clock, faults) as h:
        await h.emit(1)
        await h.wait_until(lambda: h.job_states() == ["succeeded"], seconds=100)

    first, second = h.attempts()
    assert first["outcome"] == "retry"
    assert first["status"] is None
    # A 2xx whose body is not JSON still counts: only the status matters.
    assert second["status"] == 200
    assert second["outcome"] == "delivered"


async def test_continuous_failure_disables(tmp_path: Path, clock: trio.testing.MockClock) -> None:
    faults = [Fault(FaultKind.STATUS, status=500)] * 10
    async with harness(
        tmp_path, clock, faults, retry_schedule=(30.0, 60.0), disable_after=60.0
    ) as h:
        await h.emit(1)
        await h.wait_until(lambda: h.job_states() == ["dead"], seconds=1000)

    assert [row["outcome"] for row in h.attempts()] == ["retry", "retry", "disabled"]
    assert h.actor.endpoint_health["crm"].disabled


async def test_first_attempts_in_commit_order(
    tmp_path: Path, clock: trio.testing.MockClock
) -> None:
    async with harness(tmp_path, clock) as h:
        await h.emit(*range(1, 31))
        await h.wait_until(lambda: h.job_states().count("succeeded") == 30, seconds=100)

    received = [
        json.loads(item.body)["data"]["review"]["review_id"] for item in h.receiver.received
    ]
    assert received == [f"r{number}" for number in range(1, 31)]


async def test_forbidden_target_never_contacted(
    tmp_path: Path, clock: trio.testing.MockClock
) -> None:
    async with harness(tmp_path, clock, allow_private=False) as h:
        await h.emit(1)
        await h.wait_until(lambda: h.job_states() == ["dead"], seconds=100)

    assert h.receiver.received == []
    [attempt] = h.attempts()
    assert "allow_private" in attempt["error"]


def test_endpoint_replace_keeps_schedule() -> None:
    shorter = replace(endpoint(), retry_schedule=(1.0,))

    assert shorter.max_attempts == 2


# Configuration


def load_webhooks(tmp_path: Path, table: str) -> Any:
    path = tmp_path / "plaudit.toml"
    path.write_text(table, encoding="utf-8")
    return load_config(path)


GOOD_SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()


def test_config_builds_endpoints(tmp_path: Path) -> None:
    config = load_webhooks(
        tmp_path,
        f"""
[[webhooks.endpoints]]
name = "crm"
url = "https://hooks.example.com/in"
secrets = ["{GOOD_SECRET}"]
""",
    )

    [built] = build_endpoints(config.webhooks)
    assert built.retry_schedule == DEFAULT_WEBHOOK_SCHEDULE
    assert built.max_attempts == 8
    assert built.timeout == 15.0
    assert not built.allow_private
    assert built.max_per_second == 0.0
    assert built.ca_file == ""
    assert GOOD_SECRET not in repr(config)


@pytest.mark.parametrize(
    ("fields", "key", "problem"),
    [
        ('url = "ftp://x/"', "webhooks.endpoints[0].url", "not an http"),
        ('url = "https://u:p@x/"', "webhooks.endpoints[0].url", "credentials"),
        ('secrets = ["nope"]', "webhooks.endpoints[0].secrets[0]", "whsec_"),
        ("secrets = []", "webhooks.endpoints[0].secrets", "no secrets"),
        ('events = ["review created"]', "webhooks.endpoints[0].events[0]", "event pattern"),
        ('name = "CRM!"', "webhooks.endpoints[0].name", "invalid name"),
        ("retry_schedule = [5.0, -1.0]", "webhooks.endpoints[0].retry_schedule", ""),
        ("max_per_second = -1.0", "webhooks.endpoints[0].max_per_second", ""),
        ('ca_file = "/nonexistent/ca.pem"', "webhooks.endpoints[0].ca_file", "not found"),
    ],
)
def test_config_rejects_bad_endpoint(tmp_path: Path, fields: str, key: str, problem: str) -> None:
    defaults = {
        "name": '"crm"',
        "url": '"https://hooks.example.com/in"',
        "secrets": f'["{GOOD_SECRET}"]',
    }
    field_name = fields.split(" = ", maxsplit=1)[0]
    defaults.pop(field_name, None)
    lines = [f"{name} = {value}" for name, value in defaults.items()] + [fields]
    table = "[[webhooks.endpoints]]\n" + "\n".join(lines) + "\n"

    with pytest.raises(ConfigError) as raised:
        load_webhooks(tmp_path, table)

    text = str(raised.value)
    assert key in text
    assert problem in text
    # An invalid secret is described, never echoed.
    assert "nope" not in text


def test_config_rejects_duplicate_names(tmp_path: Path) -> None:
    entry = f"""
[[webhooks.endpoints]]
name = "crm"
url = "https://hooks.example.com/in"
secrets = ["{GOOD_SECRET}"]
"""
    with pytest.raises(ConfigError, match="duplicate"):
        load_webhooks(tmp_path, entry + entry)


async def test_open_breaker_defers_without_attempt(
    tmp_path: Path, clock: trio.testing.MockClock
) -> None:
    # Five failures in a row open the endpoint's breaker for 30 s (the
    # default BreakerConfig); the sixth delivery waits for the probe.
    faults = [Fault(FaultKind.STATUS, status=500)] * 5
    async with harness(tmp_path, clock, faults, max_in_flight=1) as h:
        await h.emit(*range(1, 7))
        await h.wait_until(lambda: h.job_states().count("succeeded") == 6, seconds=1000)
        breaker = h.actor.breakers["crm"].statistics()

    sixth = [row for row in h.attempts() if row["event_key"].endswith(":r6")]
    first_failure = h.attempts()[0]["at"]
    # Deferral used no attempt: the sixth delivery's only attempt is number 1.
    assert [row["attempt"] for row in sixth] == [1]
    assert sixth[0]["outcome"] == "delivered"
    assert sixth[0]["at"] - first_failure >= 30.0
    assert breaker.times_opened == 1
    assert breaker.state == "closed"


async def test_delivery_metrics_counted(tmp_path: Path, clock: trio.testing.MockClock) -> None:
    name = "plaudit_webhook_deliveries_total"
    before = REGISTRY.get_sample_value(name, {"outcome": "delivered"}) or 0.0
    async with harness(tmp_path, clock) as h:
        await h.emit(1, 2)
        await h.wait_until(lambda: h.job_states() == ["succeeded"] * 2, seconds=100)

    after = REGISTRY.get_sample_value(name, {"outcome": "delivered"}) or 0.0
    assert after - before == 2


async def test_slow_lane_keeps_leases(tmp_path: Path, clock: trio.testing.MockClock) -> None:
    """Jobs waiting behind hanging attempts extend their leases instead of losing them."""
    faults = [Fault(FaultKind.HANG)] * 4
    recovered: list[int] = []
    async with harness(tmp_path, clock, faults, lease_seconds=20.0) as h:

        async def sweep() -> None:
            # What the daemon's housekeeping does: recover expired leases.
            while True:
                recovered.append(await h.journal.recover_expired_leases())
                await trio.sleep(5)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(sweep)
            await h.emit(1, 2, 3, 4)
            await h.wait_until(lambda: h.job_states().count("succeeded") == 4, seconds=1000)
            nursery.cancel_scope.cancel()
        released = h.actor.statistics().jobs_released

    first_attempts = [row for row in h.attempts() if row["attempt"] == 1]
    assert [row["error"] for row in first_attempts] == ["timed out after 15 s"] * 4
    assert sorted(row["event_key"] for row in first_attempts) == [
        f"review.created:google:r{number}" for number in range(1, 5)
    ]
    assert released == 0
    assert sum(recovered) == 0
    assert len(h.receiver.received) == 8


# The ctl side of the commands


def parse_ctl(*argv: str) -> dict[str, Any]:
    options = build_parser().parse_args(list(argv))
    return request_args(options)


def test_ctl_replay_by_id() -> None:
    assert parse_ctl("replay", "42") == {"job": 42}


def test_ctl_replay_since_converts_time() -> None:
    args = parse_ctl("replay", "--endpoint", "crm", "--since", "2026-01-01T00:00:00Z")

    assert args == {"endpoint": "crm", "since": START}


def test_ctl_replay_rejects_bad_time(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_ctl("replay", "--endpoint", "crm", "--since", "yesterday")

    assert "ISO 8601" in capsys.readouterr().err


def test_ctl_deliveries_filters() -> None:
    args = parse_ctl("deliveries", "--endpoint", "crm", "--state", "dead", "--limit", "5")

    assert args == {"endpoint": "crm", "state": "dead", "limit": 5}


def test_ctl_renders_attempt_table() -> None:
    text = render(
        "deliveries",
        {
            "attempts": [
                {
                    "job_id": 7,
                    "endpoint": "crm",
                    "event_key": "review.created:google:r1",
                    "attempt": 2,
                    "status_code": 503,
                    "latency_ms": 12.5,
                    "outcome": "retry",
                    "attempted_at": START,
                    "error": "HTTP 503: the receiver did not respond with 2xx",
                }
            ]
        },
    )

    header, row = text.splitlines()
    assert header.startswith("DELIVERY  ENDPOINT")
    assert "503" in row
    assert "retry" in row
