"""Review-request e-mail in ``plaudit demo --chaos``: steps that fall due during the run.

The chaos config gets a vendor, an ``[smtp]`` table aimed at a loopback
:class:`~plaudit.sandbox.smtp.SmtpSink` in the harness's process, and a
campaign whose first step is overdue when the couples are imported and whose
later steps follow ``STEP_DELAY`` seconds after the one before, so sends go
on through the whole fault phase.

The sink fails single transactions before DATA (450 at RCPT, a connection
closed at RCPT), at most 0.4 a second, which the in-call retry of
``[smtp.retry]`` or the job's retry must absorb.  Some SIGKILLs are aimed
at a send.  The harness scripts a slow reply to the next message and kills
the daemon while that message's DATA waits for its reply.  In that window
only the journal's submission marker prevents a second send.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Final, final

import trio

from plaudit.chaos_figures import request_figures
from plaudit.sandbox.request_steps import import_couples_csv, read_request_steps, vendor_tables
from plaudit.sandbox.smtp import Outcome, SmtpSink

# Seconds between one step's send and the next step's due time.  Days in the
# config, so the campaign keeps the production code path.
STEP_DELAY: Final = 8.0
# Couples with e-mail consent; each walks through the campaign's steps.
COUPLES_CSV: Final = """\
Client Name,Client Email,Client Phone,Project Date,Project Location,Email Consent
Ana Silva & Rui Costa,ana.silva@example.com,,2026-09-05,Quinta do Lago,yes
Mia Kim,mia.kim@example.org,,2026-09-12,Harbour House,yes
Noah Frei and Lea Baum,noah.frei@example.net; lea@example.net,,2026-09-19,Gut Sonnenhof,yes
"""
# Seconds the sink delays its reply to a message whose send a kill is aimed at.
SLOW_REPLY: Final = 3.0
# Seconds a kill aimed at a send waits for the next message before it lands anyway.
AIM_TIMEOUT: Final = 6.0
# Seconds after the message's data arrived at which the aimed kill lands,
# well inside SLOW_REPLY.
AIM_DELAY: Final = 0.5
POLL_INTERVAL: Final = 0.05
# Scripted failures before DATA; none after it, whose outcome would be ambiguous.
PRE_DATA_FAULTS: Final[tuple[Outcome, ...]] = ("temporary_rcpt", "disconnect_rcpt")
TEXT: Final = (
    "Dear {{ couple_names }},\\n\\nThank you for your wedding on {{ wedding_date }}. "
    "A review helps other couples:\\n"
    "{% for link in review_links %}{{ link.platform }}: {{ link.url }}\\n{% endfor %}"
    "\\n{{ vendor }}\\nUnsubscribe: {{ unsubscribe_link }}\\n"
)


def step_count(seconds: float) -> int:
    """Return the campaign's steps for a fault phase ``seconds`` long: enough to span it."""
    return max(2, min(40, int(seconds // STEP_DELAY) + 2))


def campaign_config(*, port: int, base_url: str, steps: int) -> str:
    """Return the ``[vendor]``, ``[smtp]`` and ``[[campaigns]]`` tables of a chaos run."""
    # In-call retries short enough that an attempt and its retries end well
    # within the chaos run's 15 s journal lease, so no step runs twice at once.
    tables = vendor_tables(
        base_url=base_url, smtp_port=port, review_links=("google",), smtp_timeout=5.0
    )
    tables += """
[smtp.retry]
max_attempts = 3
deadline = 3.0
backoff_initial = 0.2
backoff_max = 1.0

[[campaigns]]
name = "chaos"
"""
    first = """
[[campaigns.steps]]
delay_days = 10
send_window_hours = 0
subject = "Thank you, {{ couple_names }}"
"""
    later = f"""
[[campaigns.steps]]
delay_days = {STEP_DELAY / 86400.0!r}
send_window_hours = 0
subject = "Step {{index}} from {{{{ vendor }}}}"
"""
    body = f'text = "{TEXT}"\n'
    tables += first + body
    for index in range(1, steps):
        tables += later.replace("{index}", str(index)) + body
    return tables


@final
class ChaosMail:
    """The SMTP sink of a chaos run, its faults, aimed kills and figures."""

    def __init__(self, *, seed: int) -> None:
        self.sink = SmtpSink(slow_seconds=SLOW_REPLY)
        self.imported = False
        self.aimed_kills = 0
        self._rng = random.Random(seed + 2)

    def __repr__(self) -> str:
        return f"<ChaosMail imported={self.imported} aimed_kills={self.aimed_kills} {self.sink!r}>"

    def statistics(self) -> dict[str, int]:
        """Return the sink's counts and the kills aimed at a send."""
        return {**self.sink.statistics(), "aimed_kills": self.aimed_kills}

    def received_ids(self) -> list[str]:
        """Return the Message-ID of every accepted message, once per acceptance."""
        return [str(message.parsed()["Message-ID"]) for message in self.sink.messages]

    async def import_couples(self, socket_path: Path, state_dir: Path) -> None:
        """Import the couples through the control socket, once it accepts the request."""
        if not self.imported:
            self.imported = await import_couples_csv(socket_path, state_dir, COUPLES_CSV)

    def maybe_fault(self) -> None:
        """Script one failure before DATA now and then.

        Called every 0.25 s, and at most one failure waits at a time, so
        there are at most 0.4 a second.
        """
        if not self.sink.script and self._rng.random() < 0.1:
            self.sink.script.append(self._rng.choice(PRE_DATA_FAULTS))

    async def aim_at_send(self, *, kill: Callable[[], None]) -> bool:
        """Call ``kill`` while a message's DATA waits for the sink's slow reply.

        Returns True when the kill landed during a send, False when no
        message came within ``AIM_TIMEOUT`` seconds and it landed anyway.
        """
        self.sink.script[:] = ["slow"]
        before = self.sink.statistics()["data_received"]
        for _ in range(int(AIM_TIMEOUT / POLL_INTERVAL)):
            if self.sink.statistics()["data_received"] > before:
                # The message is in; its reply waits SLOW_REPLY seconds.
                await trio.sleep(AIM_DELAY)
                kill()
                self.aimed_kills += 1
                return True
            await trio.sleep(POLL_INTERVAL)
        self.sink.script.clear()
        kill()
        return False

    def pending(self, journal: Path, *, due_before: float) -> int:
        """Return the steps due before ``due_before`` whose message has not arrived yet."""
        steps = read_request_steps(journal, channel="email")
        return request_figures(steps, self.received_ids(), due_before=due_before)[
            "requests_never_sent"
        ]

    def figures(self, journal: Path, *, due_before: float) -> dict[str, int]:
        """Return the request figures of the run for steps due before ``due_before``."""
        steps = read_request_steps(journal, channel="email")
        return {
            **request_figures(steps, self.received_ids(), due_before=due_before),
            "smtp_messages_received": len(self.sink.messages),
            "kills_during_sends": self.aimed_kills,
        }
