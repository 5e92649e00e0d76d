"""The campaign settings that recording a message event needs, outside the notifier.

The bounce mailbox and the inbox record complaints, bounces and clicks
without the notifier's configuration.  The daemon hands them a
:data:`CampaignRulesSource` that builds :class:`CampaignRules` from the
current configuration, so a reload applies from the next event on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import final

import msgspec

from plaudit.config.model import Config
from plaudit.messaging.campaigns import campaigns_stopping_on


@final
class CampaignRules(msgspec.Struct, frozen=True, kw_only=True):
    """The campaigns that stop on each recorded event, and the vendor's review links."""

    # Names of the campaigns whose stop_on lists "complaint" or "hard_bounce".
    stop_on_complaint: frozenset[str] = frozenset()
    stop_on_hard_bounce: frozenset[str] = frozenset()
    # [vendor] review_links: platform -> URL of its public review page.
    review_links: Mapping[str, str] = msgspec.field(default_factory=dict)


CampaignRulesSource = Callable[[], CampaignRules]


def campaign_rules_of(config: Config) -> CampaignRules:
    """Return the rules of ``config``: its stopping campaigns and review links."""
    return CampaignRules(
        stop_on_complaint=campaigns_stopping_on(config, "complaint"),
        stop_on_hard_bounce=campaigns_stopping_on(config, "hard_bounce"),
        review_links=dict(config.vendor.review_links) if config.vendor is not None else {},
    )


def no_rules() -> CampaignRules:
    """Return the rules of a configuration without campaigns or vendor: nothing stops."""
    return CampaignRules()
