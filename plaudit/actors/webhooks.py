"""The webhook actor: signed delivery of journal events to vendors' endpoints.

Deliveries are ``webhook.deliver`` jobs that the emit hook
(:class:`~plaudit.webhooks.router.Router`) enqueues in the transaction of the
event itself.  The actor claims them in batches.  It starts each endpoint's
deliveries in job order, at most ``max_in_flight`` at a time, while endpoints
run side by side.  Each outcome is written by
:func:`~plaudit.webhooks.records.record_decision`, which also logs the
attempt and applies the endpoint's exact retry schedule.

Ordering: for an endpoint with ``max_in_flight = 1`` (the default), first
attempts go out one at a time in the commit order of the events.  With more,
that many overlap and can arrive out of order.  A failed delivery is retried
on its own schedule and does not hold back later events, so a retry can
arrive after newer events.  Receivers should order by the body's
``timestamp`` and drop repeats by ``webhook-id``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Final, final

import httpx
import msgspec
import trio

import plaudit
from plaudit import metrics
from plaudit.actors.base import Actor, ChildContext
from plaudit.config.model import BreakerConfig
from plaudit.connectors.tls import shared_ssl_context
from plaudit.journal import AsyncJournal, Job, LeaseLostError, Tx
from plaudit.journal import operations as job_operations
from plaudit.reliability.breaker import CircuitBreaker
from plaudit.webhooks import records
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
    resolve_target,
    system_resolver,
)

log = logging.getLogger(__name__)

# A receiver's response body is read up to this size and otherwise ignored;
# reading it lets the connection be reused.
MAX_RESPONSE_BYTES: Final = 64 * 1024
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
        self._client = client or httpx.AsyncClient(
            verify=shared_ssl_context(),
            follow_redirects=False,
            limits=httpx.Limits(max_connections=max(concurrency, 1) * 2),
        )
        self._owns_client = client is None
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

    def reconfigure(self, endpoints: Sequence[Endpoint]) -> None:
        """Use reloaded endpoints from the next claimed job on."""
        self.endpoints = {endpoint.name: endpoint for endpoint in endpoints}
        self.wake()

    async def start(self, ctx: ChildContext) -> None:
        try:
            await super().start(ctx)
        finally:
            if self._owns_client:
                with trio.CancelScope(shield=True):
                    await self._client.aclose()

    async def on_start(self) -> None:
        self.endpoint_health = await self.journal.read(records.load_health)
        self._update_gauges()

    async def on_idle(self) -> None:
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
        async with trio.open_nursery() as nursery:
            for index, job in enumerate(jobs):
                if ctx.stop_requested.is_set() or self.paused:
                    await self._release_all([job for job in jobs[index:] if job.id in expiry])
                    return
                await slots.acquire()
                await self._keep_leases(jobs[index:], expiry, needed)
                if job.id not in expiry:
                    slots.release()
                    continue
                nursery.start_soon(self._attempt_one, job, slots)

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
        decision = decide(
            result, attempt=job.attempts, endpoint=endpoint, health=health, now=self._clock()
        )
        self.endpoint_health[name] = decision.health
        return result, decision

    async def send(self, endpoint: Endpoint, job: Job) -> AttemptResult:
        """POST one signed attempt; return its status, or the network error as a result."""
        began = trio.current_time()
        try:
            target = await resolve_target(
                endpoint.url, allow_private=endpoint.allow_private, resolver=self._resolver
            )
        except ForbiddenTargetError as error:
            return AttemptResult(None, 0.0, str(error), permanent=True)
        except ResolutionError as error:
            return AttemptResult(None, _ms_since(began), str(error))

        body = delivery_body(job.payload)
        headers = sign_headers(
            endpoint.secrets,
            webhook_id=str(job.payload["webhook_id"]),
            timestamp=int(self._clock()),
            body=body,
        )
        headers |= {"content-type": "application/json", "user-agent": USER_AGENT}
        headers["host"] = target.host_header
        extensions = {"sni_hostname": target.sni_hostname} if target.sni_hostname else {}
        request = self._client.build_request(
            "POST",
            target.url,
            content=body,
            headers=headers,
            extensions=extensions,
            timeout=endpoint.timeout,
        )
        return await self._post(request, limit=endpoint.timeout, began=began)

    async def _post(self, request: httpx.Request, *, limit: float, began: float) -> AttemptResult:
        status: int | None = None
        # One deadline for the whole attempt, so a receiver that sends its response
        # a byte at a time cannot stretch it past ``timeout``.
        with trio.move_on_after(limit):
            try:
                response = await self._client.send(request, stream=True)
            except httpx.HTTPError as error:
                return AttemptResult(None, _ms_since(began), _transport_error(error))
            try:
                status = response.status_code
                await _read_some(response)
            except httpx.HTTPError:
                # The status line arrived; a broken body does not change it.
                pass
            finally:
                with trio.CancelScope(shield=True):
                    await response.aclose()
            return AttemptResult(status, _ms_since(began))
        if status is not None:
            return AttemptResult(status, _ms_since(began))
        return AttemptResult(None, _ms_since(began), f"timed out after {limit:g} s")

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


async def _read_some(response: httpx.Response) -> None:
    received = 0
    async for chunk in response.aiter_raw():
        received += len(chunk)
        if received >= MAX_RESPONSE_BYTES:
            return


def _ms_since(began: float) -> float:
    return (trio.current_time() - began) * 1000


def _transport_error(error: httpx.HTTPError) -> str:
    if isinstance(error, httpx.TimeoutException):
        return f"timed out ({type(error).__name__})"
    return f"{type(error).__name__}: {error}".rstrip(": ")
