"""Review-request steps as ``plaudit demo`` and its chaos run drive and read them.

Both harnesses import their couples through the daemon's control socket with
:func:`import_couples_csv`, configure the same vendor with
:func:`vendor_tables`, and read the steps back from the journal file with
:func:`read_request_steps` while the daemon runs.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import final

from plaudit.daemon.control_client import request
from plaudit.errors import ControlError


@final
@dataclasses.dataclass(frozen=True, slots=True)
class RequestStep:
    """One review-request step of the journal."""

    request_id: int
    state: str
    # Unix time the step fell due.
    scheduled_at: float
    # None until the first send attempt fixes it.
    message_id: str | None
    # True when the step was recorded as sent without the server's reply.
    unconfirmed: bool
    # "email", "sms" or "push".
    channel: str = "email"


def read_request_steps(journal: Path, *, channel: str | None = None) -> list[RequestStep]:
    """Return the request steps of the journal file, of one ``channel`` or of all, by id.

    A journal file or ``requests`` table that the daemon has not created
    yet reads as no steps.
    """
    if not journal.exists():
        return []

    query = "SELECT id, state, scheduled_at, message_id, unconfirmed, channel FROM requests"
    parameters: tuple[str, ...] = ()
    if channel is not None:
        query += " WHERE channel = ?"
        parameters = (channel,)
    connection = sqlite3.connect(f"file:{journal}?mode=ro", uri=True)
    try:
        rows = connection.execute(query + " ORDER BY id", parameters).fetchall()
    except sqlite3.OperationalError:
        # The daemon has not created the table, or not all of its columns, yet.
        return []
    finally:
        connection.close()
    return [
        RequestStep(int(id_), str(state), float(due), message_id, bool(unconfirmed), str(kind))
        for id_, state, due, message_id, unconfirmed, kind in rows
    ]


async def import_couples_csv(socket_path: Path, state_dir: Path, couples_csv: str) -> bool:
    """Write ``couples_csv`` to ``state_dir/couples.csv`` and import it through the control socket.

    Returns False when the daemon does not accept the request yet, so the
    caller can try again later.
    """
    path = state_dir / "couples.csv"
    path.write_text(couples_csv, encoding="utf-8")
    try:
        await request(socket_path, "import", {"kind": "couples", "path": str(path)})
    except (ControlError, OSError):
        return False
    return True


def vendor_tables(
    *, base_url: str, smtp_port: int, review_links: Sequence[str], smtp_timeout: float
) -> str:
    """Return the ``[vendor]`` and ``[smtp]`` tables of the harnesses' vendor.

    The vendor sends through an SMTP sink on loopback port ``smtp_port``
    without TLS.  Each platform in ``review_links`` links to
    ``{base_url}/{platform}/review``.
    """
    links = ", ".join(f'{platform} = "{base_url}/{platform}/review"' for platform in review_links)
    return f"""
[vendor]
name = "Willow & Vine Photography"
postal_address = "12 Elm Street, Springfield, IL 62701, USA"
from_address = "hello@willow-vine.example"
timezone = "America/Chicago"
unsubscribe_url = "{base_url}/unsubscribe"
unsubscribe_mailto = "unsubscribe@willow-vine.example"
review_links = {{ {links} }}

[smtp]
host = "127.0.0.1"
port = {smtp_port}
security = "none"
timeout = {smtp_timeout!r}
"""
