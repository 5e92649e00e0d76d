"""The review-request part of ``plaudit demo``: couples, a campaign and the SMTP sink.

The demo's couples married weeks ago, so the campaign's first step is due
at once.  The reminder comes a week later and stays scheduled.  One couple
declined e-mail, so the demo also shows a suppressed request.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Final, final

from plaudit.daemon.control_client import request
from plaudit.errors import ControlError
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
        return f"""
[vendor]
name = "Willow & Vine Photography"
postal_address = "12 Elm Street, Springfield, IL 62701, USA"
from_address = "hello@willow-vine.example"
timezone = "America/Chicago"
unsubscribe_url = "{base_url}/unsubscribe"
unsubscribe_mailto = "unsubscribe@willow-vine.example"
review_links = {{ google = "{base_url}/google/review", facebook = "{base_url}/facebook/review" }}

[smtp]
host = "127.0.0.1"
port = {port}
security = "none"
timeout = 10.0

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

    async def import_couples(self, socket_path: Path, state_dir: Path) -> None:
        """Import the demo's couples once, as soon as the daemon accepts control requests."""
        if self.imported:
            return
        path = state_dir / "couples.csv"
        path.write_text(COUPLES_CSV, encoding="utf-8")
        try:
            await request(socket_path, "import", {"kind": "couples", "path": str(path)})
        except (ControlError, OSError):
            return
        self.imported = True

    def pending(self, journal: Path) -> int:
        """Return how many first steps have not been sent or suppressed yet."""
        done = sum(
            count
            for channel, state, count in _request_counts(journal)
            if channel == "email" and state in ("sent", "suppressed")
        )
        return max(0, EXPECTED_SENT + 1 - done)

    def summary(self, journal: Path) -> dict[str, object]:
        """Return ``requests_sent`` per channel and ``requests_suppressed`` from the journal."""
        sent = {"email": 0, "sms": 0, "push": 0}
        suppressed = 0
        for channel, state, count in _request_counts(journal):
            if state == "sent" and channel in sent:
                sent[channel] += count
            elif state == "suppressed":
                suppressed += count
        return {
            "requests_sent": sent,
            "requests_suppressed": suppressed,
            "smtp_messages_received": len(self.sink.messages),
        }


def _request_counts(journal: Path) -> list[tuple[str, str, int]]:
    if not journal.exists():
        return []
    connection = sqlite3.connect(f"file:{journal}?mode=ro", uri=True)
    try:
        rows = connection.execute(
            "SELECT channel, state, count(*) FROM requests GROUP BY channel, state"
        ).fetchall()
        return [(str(row[0]), str(row[1]), int(row[2])) for row in rows]
    except sqlite3.OperationalError:
        # The daemon has not created the tables yet.
        return []
    finally:
        connection.close()
