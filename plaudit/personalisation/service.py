"""The notifier's entry to personalisation: plan a request, draft, shape the variables.

:meth:`Personaliser.plan` runs inside the notifier's prepare transaction the
first time a request's job runs.  It places the couple in the holdout or
treatment group, picks the template variant and the send time, and stores
the assignment.  When the chosen time is later, it enqueues a second send
job for that time, and the current job ends without sending.  Every later
attempt reads the stored assignment, so it reuses the same choices.
"""

from __future__ import annotations

import logging
import random
import zoneinfo
from collections.abc import Callable, Mapping
from typing import Any, Final, final

import msgspec

from plaudit.alerts import raise_alert, resolve_alert
from plaudit.config.model import CampaignConfig, Config, VendorConfig
from plaudit.journal import AsyncJournal
from plaudit.journal.tx import Tx
from plaudit.messaging.campaigns import OWNER, SEND_JOB
from plaudit.messaging.couples import Couple, load_couple
from plaudit.messaging.templates import MessageTemplate
from plaudit.metrics import PERSONALISATION_DRAFTS, PERSONALISATION_PLANS
from plaudit.personalisation import store
from plaudit.personalisation.ahead import DraftQueue
from plaudit.personalisation.channel_choice import AUTO, resolve_channel
from plaudit.personalisation.drafting import DRAFT_BREAKER, Drafter, DraftOutcome
from plaudit.personalisation.guardrails import DraftFacts
from plaudit.personalisation.profiles import normalise_platform
from plaudit.personalisation.sendtime import (
    SendTimeChoice,
    VendorLevel,
    choose_send_time,
    fit_couple,
    fit_vendor,
    fixed_time,
    hour_of_week,
    resolve_zone,
)
from plaudit.personalisation.variants import BASE, choose_arm, thompson_choice, variant_names

log = logging.getLogger(__name__)

# A planned time closer than this to now is sent at once instead of deferred.
DEFER_SLACK: Final = 60.0
# Seconds of journal time between refreshes of the vendor level and between
# settling outcomes.  Both read every recent event, so they run at most this
# often instead of once per request.
VENDOR_REFRESH: Final = 3600.0
SETTLE_INTERVAL: Final = 600.0
# Consecutive failed or timed-out drafts that raise an operator alert: as
# many as pause drafting.
DRAFT_ALERT_AFTER: Final = DRAFT_BREAKER.failure_threshold
ALERT_SOURCE: Final = "personalisation"


@final
class Plan(msgspec.Struct, frozen=True, kw_only=True):
    """One request's personalisation as the notifier uses it."""

    request_id: int
    arm: str
    variant: str
    send_at: float
    # Seconds a draft may take, counted from the plan: until the chosen time
    # when the send was deferred, else until the end of the send window.
    draft_seconds: float
    deferred: bool
    draft_state: str
    opening_line: str
    found_on: str
    notes: str
    explanation: SendTimeChoice


@final
class PersonaliserStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """Plans made so far, by outcome, and drafts by final state."""

    planned: int
    deferred: int
    holdout: int
    drafts: dict[str, int]


@final
class Personaliser:
    """Chooses group, variant, send time and opening line for each request."""

    def __init__(
        self, config: Config, *, drafter: Drafter | None = None, rng: random.Random | None = None
    ) -> None:
        if config.vendor is None:
            raise ValueError("personalisation needs a [vendor] table; add one to the config")
        self.config = config
        self.vendor: VendorConfig = config.vendor
        self.drafter = drafter
        self._rng = rng or random.Random()

        self.campaigns = {campaign.name: campaign for campaign in config.campaigns}
        self.templates = {
            (campaign.name, number, variant.name): MessageTemplate(
                f"{campaign.name} step {number + 1} variant {variant.name}",
                subject=variant.subject,
                text=variant.text,
                html=variant.html,
            )
            for campaign in config.campaigns
            for number, step in enumerate(campaign.steps)
            for variant in step.variants
        }

        self._planned = 0
        self._deferred = 0
        self._holdout = 0
        # (journal time computed, vendor level), and the journal time of the last settling.
        self._vendor: tuple[float, VendorLevel] | None = None
        self._settled_at: float | None = None
        self._draft_failures = 0

        for campaign in config.campaigns:
            if campaign.personalisation.holdout == 0:
                log.warning(
                    "personalisation.no_holdout",
                    extra={"campaign": campaign.name, "effect": "lift cannot be measured"},
                )

    def __repr__(self) -> str:
        drafting = "on" if self.drafter is not None else "off"
        return (
            f"<Personaliser campaigns={len(self.campaigns)} planned={self._planned} "
            f"deferred={self._deferred} drafting={drafting}>"
        )

    def statistics(self) -> PersonaliserStatistics:
        drafts = self.drafter.statistics() if self.drafter is not None else {}
        return PersonaliserStatistics(
            planned=self._planned, deferred=self._deferred, holdout=self._holdout, drafts=drafts
        )

    def plan_request(
        self, tx: Tx, *, request_id: int, couple_id: int, couple: Couple, campaign: str, step: int
    ) -> Plan | None:
        """Return the plan of a request about to be sent; None when its step left the config."""
        config = self.campaigns.get(campaign)
        row = tx.execute("SELECT scheduled_at FROM requests WHERE id = ?", (request_id,)).fetchone()
        if config is None or step >= len(config.steps) or row is None:
            return None
        return self.plan(
            tx,
            request_id=request_id,
            couple_id=couple_id,
            couple=couple,
            campaign=config,
            step=step,
            due_at=float(row[0]),
        )

    async def complete_draft(
        self, journal: AsyncJournal, couple: Couple, plan: Plan, *, drafts: DraftQueue
    ) -> Plan:
        """Return the plan with the opening line it can use now, without holding up the send.

        A deferred plan is queued for drafting ahead and returned unchanged.  A
        due plan whose draft is still pending waits for a queued draft, or requests
        one from the endpoint, for at most ``send_wait`` seconds, then goes out with the
        template.
        """
        if self.drafter is None or plan.draft_state != "pending":
            return plan
        if plan.deferred:
            drafts.submit(couple, plan)
            return plan

        wait = min(self.drafter.config.send_wait, plan.draft_seconds)
        outcome: DraftOutcome | None
        if await drafts.wait_for(plan.request_id, wait):
            stored = await journal.transaction(lambda tx: self._stored_draft(tx, plan))
            if stored.draft_state != "pending":
                return stored
            outcome = DraftOutcome(state="skipped", reason="the draft was not ready at the send")
        elif wait > 0:
            outcome = await self.draft(couple, plan, seconds=wait)
        else:
            outcome = DraftOutcome(state="skipped", reason="no draft was ready at the send")
        await self._record_outcome(journal, plan, outcome)
        if outcome is None:
            return plan
        return msgspec.structs.replace(plan, draft_state=outcome.state, opening_line=outcome.text)

    async def store_draft(self, journal: AsyncJournal, couple: Couple, plan: Plan) -> None:
        """Draft ahead with the time left before the send, and store the outcome.

        A draft skipped by the open breaker stays pending, so the send may still try.
        """
        outcome = await self.draft(couple, plan, seconds=plan.draft_seconds)
        if outcome is not None and outcome.state == "skipped":
            return
        await self._record_outcome(journal, plan, outcome)

    async def _record_outcome(
        self, journal: AsyncJournal, plan: Plan, outcome: DraftOutcome | None
    ) -> None:
        if outcome is None:
            return
        PERSONALISATION_DRAFTS.labels(state=outcome.state).inc()
        if outcome.state in ("failed", "timed_out"):
            self._draft_failures += 1
        elif outcome.state in ("accepted", "rejected"):
            self._draft_failures = 0
        failures = self._draft_failures

        def record(tx: Tx) -> None:
            store.record_draft(
                tx, plan.request_id, state=outcome.state, reason=outcome.reason, text=outcome.text
            )
            self._alert_on_drafting(tx, failures, outcome.reason)

        await journal.transaction(record)

    def _stored_draft(self, tx: Tx, plan: Plan) -> Plan:
        assignment = store.load_assignment(tx, plan.request_id)
        if assignment is None:
            return plan
        return msgspec.structs.replace(
            plan,
            draft_state=assignment.draft_state,
            opening_line=assignment.opening_line or "",
        )

    def _alert_on_drafting(self, tx: Tx, failures: int, reason: str) -> None:
        drafting = self.config.personalisation.drafting
        if drafting is None:
            return
        if failures == 0:
            resolve_alert(tx, source=ALERT_SOURCE, key="drafting")
        elif failures >= DRAFT_ALERT_AFTER:
            raise_alert(
                tx,
                source=ALERT_SOURCE,
                key="drafting",
                severity="warning",
                summary=f"AI drafting failed {failures} times in a row and is paused; requests "
                "go out with their templates. Check the [personalisation.drafting] endpoint.",
                detail={"url": drafting.url, "failures": failures, "last_reason": reason},
            )

    def choose_channel(
        self,
        tx: Tx,
        *,
        request_id: int,
        couple_id: int,
        campaign: str,
        step: int,
        reaches: Callable[[str], bool],
    ) -> str:
        """Choose the channel of a step with channel auto, or keep ``auto`` when it left the config.

        The holdout group and the variants use the same ``choose_arm`` split.
        """
        config = self.campaigns.get(campaign)
        if config is None or step >= len(config.steps) or not config.steps[step].channels:
            return AUTO
        choice = resolve_channel(
            tx,
            request_id=request_id,
            couple_id=couple_id,
            campaign=config,
            step=step,
            reaches=reaches,
            rng=self._rng,
        )
        return choice.channel

    def record_sent(self, tx: Tx, request_id: int) -> None:
        """Start the request's conversion window."""
        store.mark_sent(tx, request_id)

    def plan_ahead(self, tx: Tx, *, within: float, limit: int) -> list[tuple[Couple, Plan]]:
        """Plan requests due within ``within`` seconds, and return those needing a draft.

        Requests already due are left to their jobs, which are about to run.

        Only the assignment is stored: the request's own job still sends it,
        deferring it then when the chosen time is later.  Does nothing
        without drafting, because planning early only serves drafting ahead.
        """
        if self.drafter is None:
            return []
        rows = tx.execute(
            "SELECT r.id, r.couple_id, r.campaign, r.step, r.scheduled_at FROM requests r"
            " LEFT JOIN personalisation_assignments a ON a.request_id = r.id"
            " WHERE r.state = 'scheduled' AND r.scheduled_at > ? AND r.scheduled_at <= ?"
            " AND a.request_id IS NULL ORDER BY r.scheduled_at LIMIT ?",
            (tx.now + DEFER_SLACK, tx.now + within, limit),
        ).fetchall()
        ahead = []
        for request_id, couple_id, name, step, scheduled_at in rows:
            campaign = self.campaigns.get(str(name))
            couple = load_couple(tx, int(couple_id))
            if campaign is None or couple is None or int(step) >= len(campaign.steps):
                continue
            plan = self.plan(
                tx,
                request_id=int(request_id),
                couple_id=int(couple_id),
                couple=couple,
                campaign=campaign,
                step=int(step),
                due_at=float(scheduled_at),
                enqueue=False,
            )
            if plan.draft_state == "pending":
                ahead.append((couple, plan))
        return ahead

    def plan(
        self,
        tx: Tx,
        *,
        request_id: int,
        couple_id: int,
        couple: Couple,
        campaign: CampaignConfig,
        step: int,
        due_at: float,
        enqueue: bool = True,
    ) -> Plan:
        """Return the request's plan, making and storing it on the first call.

        A plan whose time is later enqueues the send job for that time, unless
        ``enqueue`` is False because the request's own job has yet to run.
        """
        assignment = store.load_assignment(tx, request_id)
        if assignment is None:
            assignment = self._assign(
                tx,
                request_id=request_id,
                couple_id=couple_id,
                couple=couple,
                campaign=campaign,
                step=step,
                due_at=due_at,
            )
            store.insert_assignment(tx, assignment)
            self._planned += 1
            self._holdout += assignment.arm == "holdout"
            timing = "deferred" if assignment.planned_at > tx.now + DEFER_SLACK else "due"
            PERSONALISATION_PLANS.labels(arm=assignment.arm, timing=timing).inc()
            log.info(
                "personalisation.planned",
                extra={
                    "request": request_id,
                    "arm": assignment.arm,
                    "variant": assignment.variant,
                    "send_at": assignment.planned_at,
                    "reason": assignment.explanation.reason,
                },
            )

        deferred = assignment.planned_at > tx.now + DEFER_SLACK
        if deferred and enqueue:
            # The key makes a repeated plan (a crash before the job completed) harmless.
            tx.enqueue(
                kind=SEND_JOB,
                owner=OWNER,
                key=f"request:{request_id}:planned",
                payload={"request": request_id},
                run_at=assignment.planned_at,
            )
            self._deferred += 1
            log.info(
                "personalisation.deferred",
                extra={
                    "request": request_id,
                    "send_at": assignment.planned_at,
                    "reason": assignment.explanation.reason,
                },
            )
        profile = store.load_profile(tx, couple_id)
        window_end = max(assignment.explanation.window_end, assignment.planned_at)
        return Plan(
            request_id=request_id,
            arm=assignment.arm,
            variant=assignment.variant,
            send_at=assignment.planned_at,
            draft_seconds=(assignment.planned_at if deferred else window_end) - tx.now,
            deferred=deferred,
            draft_state=assignment.draft_state,
            opening_line=assignment.opening_line or "",
            found_on=profile.found_on,
            notes=profile.notes,
            explanation=assignment.explanation,
        )

    def _assign(
        self,
        tx: Tx,
        *,
        request_id: int,
        couple_id: int,
        couple: Couple,
        campaign: CampaignConfig,
        step: int,
        due_at: float,
    ) -> store.Assignment:
        settings = campaign.personalisation
        if self._settled_at is None or not 0 <= tx.now - self._settled_at < SETTLE_INTERVAL:
            store.settle_outcomes(tx, now=tx.now, conversion_days=self._conversion_days())
            self._settled_at = tx.now
        zone, zone_problem = resolve_zone(couple.timezone, self.vendor.timezone)
        if zone_problem:
            log.warning(
                "personalisation.timezone_fallback",
                extra={"request": request_id, "reason": zone_problem, "zone": zone.key},
            )

        arm = choose_arm(campaign.name, couple_id, holdout=settings.holdout)
        if arm == "holdout":
            choice = fixed_time(
                due_at=due_at, now=tx.now, zone=zone, reason="holdout group: the step's due time"
            )
            variant = BASE
        else:
            choice = self._send_time(
                tx,
                couple_id=couple_id,
                couple=couple,
                campaign=campaign,
                step=step,
                due_at=due_at,
                zone=zone,
            )
            names = variant_names([entry.name for entry in campaign.steps[step].variants])
            stats = store.variant_stats(tx, campaign.name, step, names)
            variant = thompson_choice(stats, self._rng)
        if zone_problem:
            choice = msgspec.structs.replace(choice, reason=f"{choice.reason} ({zone_problem})")

        drafting = self.drafter is not None and arm == "treatment"
        return store.Assignment(
            request_id=request_id,
            couple_id=couple_id,
            campaign=campaign.name,
            step=step,
            arm=arm,
            variant=variant,
            due_at=due_at,
            planned_at=choice.send_at,
            explanation=choice,
            draft_state="pending" if drafting else "off",
        )

    def _send_time(
        self,
        tx: Tx,
        *,
        couple_id: int,
        couple: Couple,
        campaign: CampaignConfig,
        step: int,
        due_at: float,
        zone: zoneinfo.ZoneInfo,
    ) -> SendTimeChoice:
        if not campaign.personalisation.send_time:
            return fixed_time(
                due_at=due_at, now=tx.now, zone=zone, reason="send-time optimisation is off"
            )
        settings = self.config.personalisation
        recipient = store.couple_engagement(tx, couple_id, couple.emails)
        model = fit_couple(
            [hour_of_week(moment, zone) for moment in recipient],
            self._vendor_level(tx),
            recipient_weight=settings.recipient_prior_weight,
        )
        return choose_send_time(
            model,
            due_at=due_at,
            window_hours=campaign.steps[step].send_window_hours,
            now=tx.now,
            zone=zone,
        )

    def _vendor_level(self, tx: Tx) -> VendorLevel:
        if self._vendor is not None and 0 <= tx.now - self._vendor[0] < VENDOR_REFRESH:
            return self._vendor[1]
        # Vendor-level events are placed in the vendor's zone: a click's
        # recipient is not looked up, to keep this one query.
        zone, _ = resolve_zone(self.vendor.timezone, "UTC")
        buckets = [hour_of_week(moment, zone) for moment in store.vendor_engagement(tx)]
        level = fit_vendor(buckets, vendor_weight=self.config.personalisation.vendor_prior_weight)
        self._vendor = (tx.now, level)
        return level

    def _conversion_days(self) -> dict[str, int]:
        return {
            name: campaign.personalisation.conversion_days
            for name, campaign in self.campaigns.items()
        }

    def facts(self, couple: Couple, plan: Plan) -> DraftFacts:
        """Return what a draft may mention about ``couple``."""
        return DraftFacts(
            names=couple.names,
            wedding_date=couple.wedding_date,
            venue=couple.venue,
            vendor=self.vendor.name,
            found_on=plan.found_on,
            notes=plan.notes,
        )

    async def draft(self, couple: Couple, plan: Plan, *, seconds: float) -> DraftOutcome | None:
        """Draft the opening line within ``seconds`` if the plan needs one; else return None."""
        if self.drafter is None or plan.draft_state != "pending":
            return None
        if not plan.notes.strip():
            return DraftOutcome(state="off", reason="no vendor notes about this couple")
        return await self.drafter.draft(self.facts(couple, plan), seconds=seconds)

    def template(self, campaign: str, step: int, plan: Plan) -> MessageTemplate | None:
        """Return the plan's variant template, or None for the step's own template."""
        if plan.variant == BASE:
            return None
        found = self.templates.get((campaign, step, plan.variant))
        if found is None:
            log.warning(
                "personalisation.variant_missing",
                extra={"request": plan.request_id, "variant": plan.variant},
            )
        return found

    def variables(self, variables: Mapping[str, Any], plan: Plan | None) -> dict[str, Any]:
        """Add ``opening_line`` and ``found_on``; lead with the platform the couple came from.

        The holdout group keeps the baseline: no opening line and the
        configured link order.
        """
        shaped = dict(variables)
        treated = plan is not None and plan.arm == "treatment"
        shaped["opening_line"] = plan.opening_line if treated and plan is not None else ""
        shaped["found_on"] = plan.found_on if plan is not None else ""
        if treated and plan is not None and plan.found_on:
            links = list(shaped.get("review_links", []))
            first = normalise_platform(plan.found_on)
            links.sort(key=lambda link: normalise_platform(str(link.get("platform", ""))) != first)
            shaped["review_links"] = links
        return shaped


def build_personaliser(config: Config) -> Personaliser:
    """Return the personaliser for ``config``, drafting when [personalisation.drafting] is set.

    NOTE: the notifier builds a new one on every reload, and the old drafter's
    HTTP connections are not closed but left to the garbage collector.
    """
    drafting = config.personalisation.drafting
    return Personaliser(config, drafter=Drafter(drafting) if drafting is not None else None)
