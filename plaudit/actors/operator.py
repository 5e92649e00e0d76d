"""The alert-only notifier: delivers operator alerts when no campaign sends e-mail.

Alert jobs belong to the actor named ``notifier``.  When the config has no
campaigns (or no [vendor]) there is no :class:`NotifierActor`, and this actor
takes its name so that alerts are still sent, or listed when no operator
address is set.
"""

from __future__ import annotations

from typing import final

from plaudit.actors.base import Actor, Effects
from plaudit.alerts import ALERT_JOB, ALERT_OWNER
from plaudit.config.model import Config
from plaudit.journal import AsyncJournal, Job
from plaudit.messaging.email import SmtpSender
from plaudit.messaging.operator_alerts import AlertMailer


@final
class OperatorAlertActor(Actor):
    """Claims ``alert.send`` jobs and sends each alert to the operator."""

    kinds = (ALERT_JOB,)

    def __init__(
        self, journal: AsyncJournal, config: Config, *, lease_seconds: float, poll_interval: float
    ) -> None:
        super().__init__(
            ALERT_OWNER, journal, lease_seconds=lease_seconds, poll_interval=poll_interval
        )
        self.alerts = AlertMailer(config, _sender(config, None))

    def reconfigure(self, config: Config) -> None:
        """Use the operator addresses and SMTP server of a reloaded config."""
        self.alerts.reconfigure(config, _sender(config, self.alerts.sender))

    async def handle(self, job: Job) -> Effects | None:
        await self.alerts.deliver(self.journal, job)
        return None


def _sender(config: Config, current: SmtpSender | None) -> SmtpSender | None:
    if config.smtp is None:
        return None
    if current is not None and current.config == config.smtp:
        return current
    return SmtpSender(config.smtp)


def build_alert_actor(
    config: Config, journal: AsyncJournal, *, poll_interval: float = 5.0
) -> OperatorAlertActor:
    """Return the alert-only actor; alerts are rare, so it polls every five seconds."""
    return OperatorAlertActor(
        journal, config, lease_seconds=config.journal.lease_seconds, poll_interval=poll_interval
    )
