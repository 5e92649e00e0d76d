"""Operator alerts of deliverability: their source, their keys and the policy-block alert.

Rate alerts are opened and resolved by the monitor's evaluations.  A policy
block (a 5.7.x rejection of the sender) opens its alert at once, in the
transaction that records the event.  The monitor resolves that alert once
the shortest rate window of the recipient domain contains no policy block.
"""

from __future__ import annotations

from typing import Final

from plaudit.alerts import raise_alert
from plaudit.journal.tx import Tx
from plaudit.messaging.deliverability.rates import recipient_domain
from plaudit.messaging.deliverability.suppression import ReputationAlert

ALERT_SOURCE: Final = "deliverability"
RATE_PREFIX: Final = "rate:"
POLICY_PREFIX: Final = "policy_block:"

_OPEN_KEYS = "SELECT key FROM alerts WHERE source = ? AND resolved_at IS NULL"


def policy_key(domain: str) -> str:
    """Return the alert key of policy blocks by one recipient domain."""
    return f"{POLICY_PREFIX}{domain or '*'}"


def raise_policy_alert(tx: Tx, block: ReputationAlert) -> int:
    """Open the domain's policy-block alert, or count a repeat of the open one; return its id."""
    domain = recipient_domain(block.address)
    status = block.status or "no status code"
    return raise_alert(
        tx,
        source=ALERT_SOURCE,
        key=policy_key(domain),
        severity="warning",
        summary=(
            f"{domain or 'a recipient domain'} rejected mail from {block.provider or 'unknown'} "
            f"by policy ({status}); check the sender's reputation and its SPF, DKIM and DMARC "
            "records with `plaudit check-sender`"
        ),
        detail={
            "domain": domain,
            "provider": block.provider,
            "status": block.status,
            "at": block.at,
        },
    )


def open_alert_keys(tx: Tx) -> set[str]:
    """Return the keys of the open deliverability alerts."""
    return {str(row[0]) for row in tx.execute(_OPEN_KEYS, (ALERT_SOURCE,)).fetchall()}
