"""The webhook actor: signed delivery of journal events to vendors' endpoints.

Deliveries are ``webhook.deliver`` jobs that the emit hook
(:class:`~plaudit.webhooks.router.Router`) enqueues in the transaction of the
event itself.  The actor claims them in batches.  It starts each endpoint's
deliveries in job order, at most ``max_in_flight`` at a time and at most
``max_per_second`` a second, while endpoints run side by side.  A failed
attempt's outcome is written by
:func:`~plaudit.webhooks.records.record_decision`, which also logs the
attempt and applies the endpoint's exact retry schedule.  Successful
attempts are written in groups by
:class:`~plaudit.webhooks.batching.DeliveredBatcher`.

Ordering: for an endpoint with ``max_in_flight = 1`` (the default), first
attempts go out one at a time in the commit order of the events.  With more,
that many overlap and can arrive out of order.  A failed delivery is retried
on its own schedule and does not hold back later events, so a retry can
arrive after newer events.  Receivers should order by the body's
``timestamp`` and drop repeats by ``webhook-id``.
"""

from __future__ import annotations

import logging
import math
import ssl
import time
from collections.abc import Callable, Sequence
from typing import Any, Final, final

import httpx
import msgspec
import trio

import plaudit
from plaudit import metrics
from plaudit.actors.base import Actor, ChildContext
from plaudit.config.model import BreakerConfig
from plaudit.journal import AsyncJournal, Job, LeaseLostError, Tx
from plaudit.journal import operations as job_operations
from plaudit.reliability.breaker import CircuitBreaker
from plaudit.reliability.limiter import TokenBucket
from plaudit.webhooks import records
from plaudit.webhooks.batching import BatcherStatistics, DeliveredBatcher
from plaudit.webhooks.clients import (
    ClientKey,
    EndpointClients,
    build_clients,
    ms_since,
    post_attempt,
)
from plaudit.webhooks.delivery import (
    AttemptResult,
    Decision,
    EndpointHealth,
    Outcome,
    decide,
    delivery_body,
)
from plaudit.webhooks.endpoints import Endpoint
from plaudit.webhooks.router import DELIVER_KIND, OWNER
from plaudit.webhooks.signing import sign_headers
from plaudit.webhooks.ssrf import (
    ForbiddenTargetError,
    ResolutionError,
    Resolver,
    Target,
    resolve_target,
    system_resolver,
)

log = logging.getLogger(__name__)

USER_AGENT: Final = f"Plaudit-Webhooks/{plaudit.__version__}"
# Time to record an attempt's outcome after its timeout, for lease checks.
LEASE_MARGIN_SECONDS: Final = 10.0


class WebhookStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """Counters of the webhook actor since it started."""

    endpoints: int
    delivered: int
    failed: int
    dead: int
    disabled_endpoints: list[str]
    attempts: int


@final
class WebhookActor(Actor):
    """Delivers ``webhook.deliver`` jobs to the configured endpoints."""

    kinds: Sequence[str] = (DELIVER_KIND,)

    def __init__(
        self,
        journal: AsyncJournal,
        endpoints: Sequence[Endpoint],
        *,
        lease_seconds: float,
        concurrency: int = 16,
        batch: int = 64,
        poll_interval: float = 1.0,
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.time,
        resolver: Resolver = system_resolver,
        breaker: BreakerConfig | None = None,
    ) -> None:
        super().__init__(
            OWNER, journal, lease_seconds=lease_seconds, poll_interval=poll_interval, batch=batch
        )
        self.endpoints = {endpoint.name: endpoint for endpoint in endpoints}
        self.endpoint_health: dict[str, EndpointHealth] = {}
        # A client given by the caller serves every endpoint.  Otherwise each
        # endpoint gets its own clients, rebuilt when its settings change.
        self._shared_client = client
        self._clients: dict[str, EndpointClients] = {}
        self._retired: list[EndpointClients] = []
        self._batcher = DeliveredBatcher(journal)
        self._literal_targets: dict[tuple[str, bool], Target] = {}
        self._buckets: dict[str, TokenBucket] = {}
        self._limiter = trio.CapacityLimiter(concurrency)
        self._clock = clock
        self._resolver = resolver
        self._counts = dict.fromkeys(Outcome, 0)
        self._attempts = 0
        self._max_poll_interval = poll_interval
        self._breaker_config = breaker or BreakerConfig()
        self.breakers: dict[str, CircuitBreaker] = {}

    def __repr__(self) -> str:
        return (
            f"<WebhookActor endpoints={len(self.endpoints)} "
            f"delivered={self._counts[Outcome.DELIVERED]} paused={self.paused}>"
        )

    def webhook_statistics(self) -> WebhookStatistics:
        return WebhookStatistics(
            endpoints=len(self.endpoints),
            delivered=self._counts[Outcome.DELIVERED],
            failed=self._counts[Outcome.RETRY],
            dead=self._counts[Outcome.DEAD] + self._counts[Outcome.SKIPPED],
            disabled_endpoints=sorted(
                name for name, health in self.endpoint_health.items() if health.disabled
            ),
            attempts=self._attempts,
        )

    def batcher_statistics(self) -> BatcherStatistics:
        """Return how successful attempts were grouped into journal writes."""
        return self._batcher.statistics()

    def reconfigure(self, endpoints: Sequence[Endpoint]) -> None:
        """Use reloaded endpoints from the next claimed job on."""
        self.endpoints = {endpoint.name: endpoint for endpoint in endpoints}
        self.wake()

    async def start(self, ctx: ChildContext) -> None:
        try:
            await super().start(ctx)
        finally:
            with trio.CancelScope(shield=True):
                self._retired.extend(self._clients.values())
                self._clients.clear()
                await self._close_retired()

    async def _close_retired(self) -> None:
        while self._retired:
            await self._retired.pop().aclose()

    def _clients_for(self, endpoint: Endpoint) -> EndpointClients:
        """Return the endpoint's clients, built on first use or after its settings changed.

        Raises ssl.SSLError or OSError when the endpoint's ``ca_file`` cannot be loaded.
        """
        clients = self._clients.get(endpoint.name)
        if clients is not None and clients.key == ClientKey.of(endpoint):
            return clients
        if clients is not None:
            # Closed in on_idle, once no attempt can still be using them.
            self._retired.append(clients)
        clients = build_clients(endpoint)
        self._clients[endpoint.name] = clients
        return clients

    async def on_start(self) -> None:
        self.endpoint_health = await self.journal.read(records.load_health)
        self._update_gauges()

    async def on_idle(self) -> None:
        # Nothing is in flight between batches, so replaced clients can go.
        await self._close_retired()
        # Sleep until the next retry is due rather than a whole poll interval,
        # so each attempt starts on its schedule.
        due = await self.journal.read(records.next_due)
        wait = self._max_poll_interval
        if due is not None:
            wait = min(wait, max(due - self._clock(), 0.0))
        self.poll_interval = wait

    async def enable(self, name: str) -> None:
        """Clear an endpoint's disabled state (an operator action)."""
        await self.journal.transaction(lambda tx: records.enable_endpoint(tx, name))
        self.endpoint_health[name] = EndpointHealth()
        self._update_gauges()
        log.info("webhook.endpoint_enabled", extra={"endpoint": name})
        self.wake()

    # The claim loop hands batches here instead of running jobs one by one.

    async def _run_claimed(self, ctx: ChildContext, jobs: list[Job]) -> None:
        lanes: dict[str, list[Job]] = {}
        for job in jobs:
            lanes.setdefault(str(job.payload.get("endpoint")), []).append(job)
        async with trio.open_nursery() as nursery:
            for lane in lanes.values():
                nursery.start_soon(self._run_lane, ctx, lane)

    async def _run_lane(self, ctx: ChildContext, jobs: list[Job]) -> None:
        """Send one endpoint's jobs in job order, at most ``max_in_flight`` at a time."""
        endpoint = self.endpoints.get(str(jobs[0].payload.get("endpoint")))
        slots = trio.Semaphore(endpoint.max_in_flight if endpoint is not None else 1)
        # An attempt ends within the timeout, so a lease this long is enough
        # until the next job's turn.
        needed = (endpoint.timeout if endpoint is not None else 0.0) + LEASE_MARGIN_SECONDS
        expiry = {job.id: job.lease_expires_at or 0.0 for job in jobs}
        renew_at = min(expiry.values(), default=math.inf) - needed
        async with trio.open_nursery() as nursery:
            for index, job in enumerate(jobs):
                if ctx.stop_requested.is_set() or self.paused:
                    await self._release_all([job for job in jobs[index:] if job.id in expiry])
                    return
                await slots.acquire()
                # The rate limit is waited out in steps of at most a second, so
                # a stop request, a pause and lease renewals are not held up.
                while (delay := self._rate_delay(endpoint)) > 0:
                    if ctx.stop_requested.is_set() or self.paused:
                        slots.release()
                        await self._release_all(
                            [item for item in jobs[index:] if item.id in expiry]
                        )
                        return
                    await trio.sleep(min(delay, 1.0))
                    renew_at = await self._renew_due(jobs, index, expiry, needed, renew_at)
                renew_at = await self._renew_due(jobs, index, expiry, needed, renew_at)
                if job.id not in expiry:
                    slots.release()
                    continue
                nursery.start_soon(self._attempt_one, job, slots)

    def _rate_delay(self, endpoint: Endpoint | None) -> float:
        """Take a token of the endpoint's rate limit and return 0, or return the wait for one."""
        if endpoint is None or endpoint.max_per_second <= 0:
            return 0.0
        bucket = self._buckets.get(endpoint.name)
        if bucket is None or bucket.rate != endpoint.max_per_second:
            bucket = TokenBucket(
                f"webhook:{endpoint.name}",
                rate=endpoint.max_per_second,
                capacity=max(1.0, endpoint.max_per_second),
            )
            self._buckets[endpoint.name] = bucket
        if bucket.try_acquire():
            return 0.0
        return max(bucket.delay_for(), 0.001)

    async def _renew_due(
        self,
        jobs: list[Job],
        index: int,
        expiry: dict[int, float],
        needed: float,
        renew_at: float,
    ) -> float:
        """Extend the leases of ``jobs[index:]`` once ``renew_at`` has come, and return the next.

        Scanning the waiting jobs before every start would cost time quadratic
        in the batch, so the scan waits until the soonest lease needs it.
        """
        if self._clock() < renew_at:
            return renew_at
        waiting = jobs[index:]
        await self._keep_leases(waiting, expiry, needed)
        soonest = (expiry[item.id] for item in waiting if item.id in expiry)
        return min(soonest, default=math.inf) - needed

    async def _keep_leases(
        self, waiting: list[Job], expiry: dict[int, float], needed: float
    ) -> None:
        """Extend the leases of waiting jobs that would expire within ``needed`` seconds.

        Jobs of a slow endpoint wait in their lane behind each other, so the
        lease taken at claim time can run out before their turn.  A job whose
        lease was already lost is dropped from ``expiry``.
        """
        now = self._clock()
        short = [job.id for job in waiting if job.id in expiry and expiry[job.id] < now + needed]
        if not short:
            return
        seconds = needed + self.lease_seconds

        def extend(tx: Tx) -> list[int]:
            lost = []
            for job_id in short:
                try:
                    job_operations.extend_lease(tx, job_id, seconds)
                except LeaseLostError:
                    lost.append(job_id)
            return lost

        lost = await self.journal.transaction(extend)
        for job_id in short:
            expiry[job_id] = now + seconds
        for job_id in lost:
            del expiry[job_id]
            log.warning("job.lease_lost", extra={"actor": self.name, "job": job_id})

    async def _attempt_one(self, job: Job, slots: trio.Semaphore) -> None:
        """Send one attempt, free its slot for the next job, then record the outcome."""
        done = False
        try:
            async with self._limiter:
                result, decision = await self._deliver(job)
            done = True
        finally:
            slots.release()
            if not done:
                # Cut off by cancellation: hand the job back now.
                await self._release_all([job])
        await self._record(job, result, decision)

    async def _deliver(self, job: Job) -> tuple[AttemptResult | None, Decision]:
        """Send one attempt, or skip it, and decide what follows."""
        name = str(job.payload["endpoint"])
        endpoint = self.endpoints.get(name)
        health = self.endpoint_health.get(name, EndpointHealth())
        if endpoint is None or not endpoint.enabled or health.disabled:
            why = "is no longer configured" if endpoint is None else "is disabled"
            error = f"endpoint {name} {why}; enable it, then replay the delivery"
            return None, Decision(Outcome.SKIPPED, health, error=error)

        breaker = self._breaker(name)
        if not breaker.allow():
            return None, Decision(Outcome.DEFERRED, health, retry_in=breaker.open_remaining())
        try:
            result = await self.send(endpoint, job)
        except BaseException:
            breaker.release_probe()
            raise
        if result.succeeded:
            breaker.record_success()
        else:
            breaker.record_failure()
        # Read again: attempts in flight beside this one may have changed it.
        health = self.endpoint_health.get(name, EndpointHealth())
        decision = decide(
            result, attempt=job.attempts, endpoint=endpoint, health=health, now=self._clock()
        )
        self.endpoint_health[name] = decision.health
        return result, decision

    async def send(self, endpoint: Endpoint, job: Job) -> AttemptResult:
        """POST one signed attempt; return its status, or the network error as a result."""
        began = trio.current_time()
        try:
            target = await self._resolve(endpoint)
        except ForbiddenTargetError as error:
            return AttemptResult(None, 0.0, str(error), permanent=True)
        except ResolutionError as error:
            return AttemptResult(None, ms_since(began), str(error))

        try:
            clients = self._clients_for(endpoint)
        except (ssl.SSLError, OSError) as error:
            message = (
                f"cannot load ca_file {endpoint.ca_file!r} of endpoint {endpoint.name} "
                f"({error}); point ca_file at a readable PEM file of CA certificates"
            )
            return AttemptResult(None, 0.0, message)

        body = delivery_body(job.payload)
        headers = sign_headers(
            endpoint.secrets,
            webhook_id=str(job.payload["webhook_id"]),
            timestamp=int(self._clock()),
            body=body,
        )
        headers |= {
            "host": target.host_header,
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "accept": "*/*",
        }
        extensions: dict[str, Any] = {"timeout": httpx.Timeout(endpoint.timeout).as_dict()}
        if target.sni_hostname:
            extensions["sni_hostname"] = target.sni_hostname
        # Built directly rather than with client.build_request: the clients
        # have no defaults to merge, and the merge costs more than the signature.
        request = httpx.Request(
            "POST", target.url, content=body, headers=headers, extensions=extensions
        )
        if self._shared_client is not None:
            return await post_attempt(
                self._shared_client, request, limit=endpoint.timeout, began=began
            )
        client = clients.checkout()
        try:
            return await post_attempt(client, request, limit=endpoint.timeout, began=began)
        finally:
            clients.checkin(client)

    async def _resolve(self, endpoint: Endpoint) -> Target:
        """Return the checked target.  An IP literal's target is checked once, then reused."""
        key = (endpoint.url, endpoint.allow_private)
        target = self._literal_targets.get(key)
        if target is not None:
            return target
        target = await resolve_target(
            endpoint.url, allow_private=endpoint.allow_private, resolver=self._resolver
        )
        if target.literal:
            self._literal_targets[key] = target
        return target

    def _breaker(self, name: str) -> CircuitBreaker:
        breaker = self.breakers.get(name)
        if breaker is None:
            breaker = CircuitBreaker(f"webhook:{name}", self._breaker_config, clock=self._clock)
            self.breakers[name] = breaker
        return breaker

    async def _record(self, job: Job, result: AttemptResult | None, decision: Decision) -> None:
        if decision.outcome is Outcome.DEFERRED:
            await self._defer(job, decision.retry_in or 0.0)
            return
        if decision.outcome is Outcome.DELIVERED and result is not None:
            delivered = records.Delivered(job, result, decision)
            if not await self._batcher.record(delivered):
                log.warning("job.lease_lost", extra={"actor": self.name, "job": job.id})
                return
            self._count(job, result, decision, 0)
            return
        try:
            stopped = await self.journal.transaction(
                lambda tx: records.record_decision(tx, job, result=result, decision=decision)
            )
        except LeaseLostError:
            log.warning("job.lease_lost", extra={"actor": self.name, "job": job.id})
            return
        self._count(job, result, decision, stopped)

    def _count(
        self, job: Job, result: AttemptResult | None, decision: Decision, stopped: int
    ) -> None:
        outcome = decision.outcome
        self._counts[outcome] += 1
        metrics.WEBHOOK_DELIVERIES.labels(outcome.value).inc()
        if result is not None:
            self._attempts += 1
            metrics.WEBHOOK_ATTEMPT.observe(result.latency_ms / 1000)
        if outcome is Outcome.DELIVERED:
            self._succeeded += 1
            self._last_success_at = self._clock()
            return
        self._failed += 1
        self._last_error = decision.error
        fields = {
            "endpoint": job.payload["endpoint"],
            "job": job.id,
            "attempt": job.attempts,
            "outcome": outcome.value,
            "error": decision.error,
            "retry_in": decision.retry_in,
        }
        log.warning("webhook.delivery_failed", extra=fields)
        if outcome is Outcome.DISABLED:
            cause = records.disable_cause(records.disable_status(result))
            metrics.WEBHOOK_ENDPOINT_DISABLES.labels(cause).inc()
            self._update_gauges()
            log.error(
                "webhook.endpoint_disabled",
                extra={
                    "endpoint": job.payload["endpoint"],
                    "reason": decision.health.disabled_reason,
                    "deliveries_stopped": stopped,
                },
            )

    async def _defer(self, job: Job, seconds: float) -> None:
        """Hand the job back unattempted, due when the breaker admits a probe."""

        def defer(tx: Tx) -> None:
            job_operations.release(tx, job.id)
            tx.execute(
                "UPDATE jobs SET next_run_at = ? WHERE id = ?", (tx.now + max(seconds, 0.5), job.id)
            )

        try:
            await self.journal.transaction(defer)
        except LeaseLostError:
            log.warning("job.lease_lost", extra={"actor": self.name, "job": job.id})
            return
        self._counts[Outcome.DEFERRED] += 1

    def _update_gauges(self) -> None:
        disabled = sum(1 for health in self.endpoint_health.values() if health.disabled)
        metrics.WEBHOOK_ENDPOINTS_DISABLED.set(disabled)
