"""The review-request part of ``plaudit demo``: couples, a campaign and the SMTP sink.

The demo's couples married weeks ago, so the campaign's first step is due
at once.  The reminder comes a week later and stays scheduled.  One couple
declined e-mail, so the demo also shows a suppressed request.
"""

from __future__ import annotations

import collections
from pathlib import Path
from typing import Final, final

from plaudit.sandbox.request_steps import import_couples_csv, read_request_steps, vendor_tables
from plaudit.sandbox.smtp import SmtpSink

COUPLES_CSV: Final = """\
Client Name,Client Email,Client Phone,Project Date,Project Location,Email Consent
Maya Ortiz & Jonah Reed,maya.ortiz@example.com; jonah@example.org,,2026-01-10,Lakeside Pavilion,yes
Priya Nair and Sam Cole,priya.nair@example.com,+1 312 555 0142,2026-01-17,The Old Mill,yes
Lena Vogel,lena.vogel@example.net,,2026-01-24,Gut Sonnenhof,yes
Tom Baker & Eli Moss,tom.baker@example.com,,2026-01-31,Harbour House,no
"""
# Couples with e-mail consent; each receives the first step.
EXPECTED_SENT: Final = 3
TEXT: Final = (
    "Dear {{ couple_names }},\\n\\nThank you for letting us be part of your wedding at "
    "{{ venue }} on {{ wedding_date }}. If you have a moment, a review helps other couples:\\n"
    "{% for link in review_links %}{{ link.platform }}: {{ link.url }}\\n{% endfor %}"
    "\\n{{ vendor }}\\nUnsubscribe: {{ unsubscribe_link }}\\n"
)


@final
class DemoMail:
    """The SMTP sink, the demo's vendor and campaign config, and the import of its couples."""

    def __init__(self) -> None:
        self.sink = SmtpSink()
        self.imported = False

    def __repr__(self) -> str:
        return f"<DemoMail imported={self.imported} {self.sink!r}>"

    def config(self, port: int, base_url: str) -> str:
        """Return the ``[vendor]``, ``[smtp]`` and ``[[campaigns]]`` tables for the demo."""
        tables = vendor_tables(
            base_url=base_url,
            smtp_port=port,
            review_links=("google", "facebook"),
            smtp_timeout=10.0,
        )
        return (
            tables
            + f"""
[[campaigns]]
name = "after-wedding"

[[campaigns.steps]]
delay_days = 10
subject = "Thank you, {{{{ couple_names }}}}"
text = "{TEXT}"

[[campaigns.steps]]
delay_days = 7
subject = "A short reminder from {{{{ vendor }}}}"
text = "{TEXT}"
"""
        )

    async def import_couples(self, socket_path: Path, state_dir: Path) -> None:
        """Import the demo's couples once, as soon as the daemon accepts control requests."""
        if not self.imported:
            self.imported = await import_couples_csv(socket_path, state_dir, COUPLES_CSV)

    def pending(self, journal: Path) -> int:
        """Return how many first steps have not been sent or suppressed yet."""
        counts = _request_counts(journal)
        done = counts["email", "sent"] + counts["email", "suppressed"]
        return max(0, EXPECTED_SENT + 1 - done)

    def summary(self, journal: Path) -> dict[str, object]:
        """Return ``requests_sent`` per channel and ``requests_suppressed`` from the journal."""
        counts = _request_counts(journal)
        suppressed = sum(count for (_, state), count in counts.items() if state == "suppressed")
        return {
            "requests_sent": {
                channel: counts[channel, "sent"] for channel in ("email", "sms", "push")
            },
            "requests_suppressed": suppressed,
            "smtp_messages_received": len(self.sink.messages),
        }


def _request_counts(journal: Path) -> collections.Counter[tuple[str, str]]:
    """Count the journal's request steps by channel and state."""
    return collections.Counter((step.channel, step.state) for step in read_request_steps(journal))
