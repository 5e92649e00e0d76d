"""The channel of a campaign step with ``channel = "auto"``, chosen per couple.

A step set to ``auto`` lists the channels it may use.  When the step is
planned, the notifier works out which of them can reach the couple (the
channel is configured, the couple consented, has an address on it, and that
address is not suppressed).  Holdout couples always get the first listed
channel, as a step that named that channel would.  When they cannot receive
it, the consent and address rules skip the step for them, as for such a
step.  Treatment couples get the receivable channel with the highest
draw from its Beta(1 + reviews, 1 + sends without a review) posterior, by
the same Thompson sampling as template variants.  Treatment outcomes are
pooled over every campaign and step of the vendor, because the channel a
couple reads is a habit of the couple, not of one message.

NOTE: the posterior is vendor-wide, so it learns which channel converts
better across the vendor's couples, not each couple's own preference.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Callable, Collection, Sequence
from typing import Final, final

import msgspec

from plaudit.config.model import CampaignConfig
from plaudit.journal.tx import Tx
from plaudit.metrics import PERSONALISATION_CHANNELS
from plaudit.personalisation.variants import Arm, VariantStats, choose_arm, thompson_choice
from plaudit.reviews.store import SupportsExecute

log = logging.getLogger(__name__)

AUTO: Final = "auto"


@final
class ChannelChoice(msgspec.Struct, frozen=True, kw_only=True):
    """The channel chosen for one request, and why."""

    channel: str
    arm: str
    # The step's channels in config order, and the subset that can reach the couple.
    allowed: list[str]
    receivable: list[str]
    reason: str


def choose_channel(
    allowed: Sequence[str],
    receivable: Collection[str],
    *,
    arm: Arm,
    stats: Sequence[VariantStats],
    rng: random.Random,
) -> ChannelChoice:
    """Choose the channel of one request from the step's ``allowed`` channels.

    ``stats`` are the settled outcomes per channel; a channel without an
    entry counts as never tried.  Raises ValueError when ``allowed`` is empty.
    """
    if not allowed:
        raise ValueError("a step with channel auto needs at least one entry in channels")
    open_channels = [name for name in allowed if name in receivable]

    def choice(channel: str, reason: str) -> ChannelChoice:
        return ChannelChoice(
            channel=channel,
            arm=arm,
            allowed=list(allowed),
            receivable=open_channels,
            reason=reason,
        )

    if arm == "holdout":
        return choice(allowed[0], "holdout group: the first listed channel")
    if not open_channels:
        return choice(allowed[0], "no listed channel can reach the couple; using the first listed")
    if len(open_channels) == 1:
        return choice(open_channels[0], "the only listed channel that can reach the couple")

    by_name = {entry.name: entry for entry in stats}
    candidates = [
        by_name.get(name, VariantStats(name=name, conversions=0, failures=0))
        for name in open_channels
    ]
    chosen = thompson_choice(candidates, rng)
    counts = ", ".join(
        f"{entry.name} {entry.conversions}/{entry.conversions + entry.failures}"
        for entry in candidates
    )
    return choice(chosen, f"Thompson sampling on reviews per channel ({counts})")


def channel_stats(tx: Tx) -> list[VariantStats]:
    """Return settled outcomes per channel of the treatment group's chosen channels.

    The holdout group is left out: it also gets the base wording at the due
    time, so its outcomes would mix those effects into its channel's rate.
    """
    rows = tx.execute(
        "SELECT c.channel, sum(a.outcome = 'converted'), sum(a.outcome = 'not_converted')"
        " FROM personalisation_channels c JOIN personalisation_assignments a"
        " ON a.request_id = c.request_id WHERE c.arm = 'treatment'"
        " GROUP BY c.channel ORDER BY c.channel"
    ).fetchall()
    return [
        VariantStats(name=str(row[0]), conversions=int(row[1]), failures=int(row[2]))
        for row in rows
    ]


def chosen_channels(
    source: SupportsExecute, campaign: str | None
) -> dict[tuple[int, str, int], str]:
    """Return the chosen channel of each (couple, campaign, step) of steps with channel auto.

    A journal without the channel table (not yet migrated) gives an empty map.
    """
    exists = source.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'personalisation_channels'",
        (),
    ).fetchone()
    if exists is None:
        return {}
    where = " WHERE campaign = ?" if campaign is not None else ""
    params: tuple[str, ...] = (campaign,) if campaign is not None else ()
    rows = source.execute(
        f"SELECT couple_id, campaign, step, channel FROM personalisation_channels{where}", params
    ).fetchall()
    return {(int(row[0]), str(row[1]), int(row[2])): str(row[3]) for row in rows}


def load_channel_choice(tx: Tx, request_id: int) -> ChannelChoice | None:
    """Return the request's stored channel choice, or None when none was made."""
    row = tx.execute(
        "SELECT channel, arm, allowed, receivable, reason FROM personalisation_channels"
        " WHERE request_id = ?",
        (request_id,),
    ).fetchone()
    if row is None:
        return None
    return ChannelChoice(
        channel=row[0],
        arm=row[1],
        allowed=list(json.loads(row[2])),
        receivable=list(json.loads(row[3])),
        reason=row[4],
    )


def store_channel_choice(
    tx: Tx, *, request_id: int, couple_id: int, campaign: str, step: int, choice: ChannelChoice
) -> None:
    """Store the choice and set it as the request's channel, so every attempt reuses it."""
    tx.execute(
        "INSERT INTO personalisation_channels (request_id, couple_id, campaign, step, arm,"
        " channel, allowed, receivable, reason, chosen_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (request_id) DO NOTHING",
        (
            request_id,
            couple_id,
            campaign,
            step,
            choice.arm,
            choice.channel,
            json.dumps(choice.allowed),
            json.dumps(choice.receivable),
            choice.reason,
            tx.now,
        ),
    )
    tx.execute(
        "UPDATE requests SET channel = ?, updated_at = ? WHERE id = ?",
        (choice.channel, tx.now, request_id),
    )


def resolve_channel(
    tx: Tx,
    *,
    request_id: int,
    couple_id: int,
    campaign: CampaignConfig,
    step: int,
    reaches: Callable[[str], bool],
    rng: random.Random,
) -> ChannelChoice:
    """Return the request's channel choice, making and storing it on the first call.

    ``reaches`` returns whether a channel can deliver to the couple now.  It
    is called once per listed channel, and only on the first call.
    """
    stored = load_channel_choice(tx, request_id)
    if stored is not None:
        return stored

    allowed = campaign.steps[step].channels
    arm = choose_arm(campaign.name, couple_id, holdout=campaign.personalisation.holdout)
    receivable = [name for name in allowed if reaches(name)]
    choice = choose_channel(allowed, receivable, arm=arm, stats=channel_stats(tx), rng=rng)
    store_channel_choice(
        tx,
        request_id=request_id,
        couple_id=couple_id,
        campaign=campaign.name,
        step=step,
        choice=choice,
    )
    PERSONALISATION_CHANNELS.labels(arm=arm, channel=choice.channel).inc()
    log.info(
        "personalisation.channel_chosen",
        extra={
            "request": request_id,
            "arm": arm,
            "channel": choice.channel,
            "receivable": receivable,
            "reason": choice.reason,
        },
    )
    return choice
