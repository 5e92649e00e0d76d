"""When and how each couple gave or withdrew e-mail and SMS consent.

The ``consent_email`` and ``consent_sms`` columns of ``couples`` are what
the notifier checks before a send.  ``consent_records`` keeps the evidence
behind them: one row each time a channel's consent changes, with the time,
the source (an import file and row, ``plaudit ctl request add``, or a web
form: the unsubscribe page records a withdrawal of e-mail consent) and its
detail.  An unchanged value adds no row, so the record of the
original grant is kept when the same file is imported again.
"""

from __future__ import annotations

from typing import Final, Literal, final

import msgspec

from plaudit.journal import Tx

ConsentChannel = Literal["email", "sms"]
SourceKind = Literal["import", "ctl", "web_form"]
CHANNELS: Final[tuple[ConsentChannel, ...]] = ("email", "sms")


@final
class ConsentSource(msgspec.Struct, frozen=True, kw_only=True):
    """The origin of a consent value: its kind and a detail such as the file name."""

    kind: SourceKind
    detail: str

    def for_row(self, row: int) -> ConsentSource:
        """Return this source with the import row number added, when there is one."""
        if row <= 0:
            return self
        return ConsentSource(kind=self.kind, detail=f"{self.detail} row {row}")


@final
class ConsentRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One recorded consent change of a couple on one channel."""

    channel: str
    granted: bool
    source: str
    detail: str
    # Unix time the change was recorded.
    recorded_at: float


def record_consent(
    tx: Tx,
    couple_id: int,
    channel: ConsentChannel,
    *,
    granted: bool,
    source: ConsentSource,
    explicit: bool = False,
) -> bool:
    """Record ``granted`` for the couple's ``channel`` unless it is the latest record already.

    Returns True when a row was added.  A couple without records and without
    consent gets none, because there is nothing to show evidence for, unless
    ``explicit`` marks an action of the couple's own, such as unsubscribing.
    """
    latest = latest_consent(tx, couple_id).get(channel)
    if latest is None and not granted and not explicit:
        return False
    if latest is not None and latest.granted == granted:
        return False
    tx.execute(
        "INSERT INTO consent_records (couple_id, channel, granted, source, detail, recorded_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (couple_id, channel, int(granted), source.kind, source.detail, tx.now),
    )
    return True


def latest_consent(tx: Tx, couple_id: int) -> dict[str, ConsentRecord]:
    """Return the latest record per channel of a couple; a channel without one is absent."""
    latest: dict[str, ConsentRecord] = {}
    for record in consent_history(tx, couple_id):
        latest[record.channel] = record
    return latest


def consent_history(tx: Tx, couple_id: int) -> list[ConsentRecord]:
    """Return every consent record of a couple, oldest first."""
    rows = tx.execute(
        "SELECT channel, granted, source, detail, recorded_at FROM consent_records"
        " WHERE couple_id = ? ORDER BY id",
        (couple_id,),
    ).fetchall()
    return [
        ConsentRecord(
            channel=str(row[0]),
            granted=bool(row[1]),
            source=str(row[2]),
            detail=str(row[3]),
            recorded_at=float(row[4]),
        )
        for row in rows
    ]
