"""The notifier's decision step: what to do with one review-request step.

:func:`decide` is pure: it reads a :class:`Snapshot` of the request, the
couple and the suppression list, and returns a :class:`Decision`.  The actor
in :mod:`plaudit.actors.notifier` gathers the snapshot and carries the
decision out.
"""

from __future__ import annotations

from typing import Final, Literal, final

import msgspec

from plaudit.messaging.channels import missing_address, missing_consent, send_time

# A failed request (a template error) is not done: once the template is
# fixed, `plaudit ctl retry JOB` sends it.
DONE_STATES: Final = frozenset({"sent", "bounced", "suppressed", "stopped"})


@final
class Snapshot(msgspec.Struct, frozen=True, kw_only=True):
    """The facts the decision step reads about one request."""

    state: str
    channel: str
    addresses: list[str]
    # Suppressed address -> suppression reason.
    suppressed: dict[str, str]
    consent_email: bool
    review_detected: bool
    # Channels that can send: e-mail, plus SMS and push when configured.
    channels: frozenset[str] = frozenset({"email"})
    consent_sms: bool = False
    # Unix time of the decision and the recipient's IANA zone, for SMS quiet hours.
    now: float = 0.0
    timezone: str = "UTC"
    # The campaign's stop_on lists "complaint": one address's complaint stops the couple.
    # Recording a complaint already stops the steps (plaudit.messaging.stop_events).  This
    # check covers complaints recorded before a reload added "complaint" to stop_on.
    stop_on_complaint: bool = False


@final
class Decision(msgspec.Struct, frozen=True, kw_only=True):
    """The decision for one request: send to ``recipients``, or end it with ``reason``."""

    action: Literal["send", "skip", "suppress", "stop", "defer"]
    recipients: list[str] = msgspec.field(default_factory=list)
    reason: str = ""
    # For "defer": the Unix time the step may go out.
    run_at: float = 0.0
    # Whether a suppress or stop also cancels the couple's other scheduled steps.
    # False when only this step's channel is out (no SMS consent, a number that
    # texted STOP, no push subscription): the campaign's next step still follows.
    couple_wide: bool = True


def decide(snapshot: Snapshot) -> Decision:
    """Decide one request step; pure, so every stop condition is testable alone."""
    if snapshot.state in DONE_STATES:
        return Decision(action="skip", reason=f"already {snapshot.state}")
    couple_wide = snapshot.channel == "email"
    if snapshot.review_detected:
        return Decision(action="stop", reason="review")
    if snapshot.channel not in snapshot.channels:
        return Decision(
            action="stop",
            reason=f"channel {snapshot.channel} is not available",
            couple_wide=couple_wide,
        )
    no_consent = missing_consent(
        snapshot.channel, consent_email=snapshot.consent_email, consent_sms=snapshot.consent_sms
    )
    if no_consent is not None:
        return Decision(action="suppress", reason=no_consent, couple_wide=couple_wide)
    if not snapshot.addresses:
        return Decision(
            action="suppress", reason=missing_address(snapshot.channel), couple_wide=couple_wide
        )

    recipients = [address for address in snapshot.addresses if address not in snapshot.suppressed]
    if not recipients:
        reasons = sorted(set(snapshot.suppressed.values()))
        return Decision(action="suppress", reason=",".join(reasons), couple_wide=couple_wide)
    if snapshot.stop_on_complaint and "complaint" in snapshot.suppressed.values():
        # A partner's address is still deliverable, but the campaign stops on complaints.
        return Decision(action="stop", reason="complaint")
    run_at = send_time(snapshot.channel, now=snapshot.now, timezone=snapshot.timezone)
    if run_at > snapshot.now:
        return Decision(action="defer", recipients=recipients, reason="quiet hours", run_at=run_at)
    return Decision(action="send", recipients=recipients)
