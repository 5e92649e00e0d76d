"""Loading the facts that matching scores: live reviews and couples with their requests."""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from plaudit.matching.scoring import CoupleFacts, ReviewFacts
from plaudit.reviews.store import SupportsExecute

# Campaign name -> platforms whose links its steps send.
CampaignLinks = Mapping[str, frozenset[str]]


def load_review_facts(source: SupportsExecute) -> list[tuple[ReviewFacts, float]]:
    """Return each live review with its first-seen time, with its contact when stored."""
    contacts = load_contacts(source)
    rows = source.execute(
        "SELECT platform, review_id, author, created_at, first_seen_at FROM reviews"
        " WHERE deleted_at IS NULL ORDER BY first_seen_at, platform, review_id",
        (),
    ).fetchall()
    facts = []
    for platform, review_id, author, created_at, first_seen_at in rows:
        email, reference = contacts.get((platform, review_id), (None, None))
        review = ReviewFacts(
            platform=platform,
            review_id=review_id,
            author=author,
            created_at=created_at,
            first_seen_at=float(first_seen_at),
            email=email,
            reference=reference,
        )
        facts.append((review, float(first_seen_at)))
    return facts


def load_contacts(source: SupportsExecute) -> dict[tuple[str, str], tuple[str | None, str | None]]:
    """Return (platform, review id) -> (e-mail, reference) for reviews whose platform gave them.

    The rows come from ``review_contacts``, which the platform sources fill
    (plaudit.reviews.contacts).  A journal older than that table has none.
    """
    table = source.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'review_contacts'", ()
    ).fetchone()
    if table is None:
        return {}
    rows = source.execute(
        "SELECT platform, review_id, email, reference FROM review_contacts", ()
    ).fetchall()
    return {(row[0], row[1]): (row[2], row[3]) for row in rows}


def load_couple_facts(
    source: SupportsExecute, campaign_links: CampaignLinks | None
) -> list[tuple[CoupleFacts, float]]:
    """Return each couple with its last update time, its first request and links sent."""
    requests = _sent_requests(source)
    rows = source.execute(
        "SELECT id, names, emails, wedding_date, updated_at FROM couples ORDER BY id", ()
    ).fetchall()
    facts = []
    for couple_id, names, emails, wedding_date, updated_at in rows:
        sent = requests.get(int(couple_id), [])
        platforms: frozenset[str] = frozenset()
        if campaign_links is not None:
            platforms = frozenset().union(*(campaign_links.get(c, frozenset()) for c, *_ in sent))
        references = {str(couple_id), f"couple-{couple_id}"}
        references.update(message_id for _c, _at, message_id in sent if message_id)
        couple = CoupleFacts(
            couple_id=int(couple_id),
            names=msgspec.json.decode(names, type=list[str]),
            emails=[address.lower() for address in msgspec.json.decode(emails, type=list[str])],
            wedding_date=wedding_date,
            first_request_at=min((at for _c, at, _m in sent), default=None),
            platforms=platforms,
            references=frozenset(references),
        )
        facts.append((couple, float(updated_at)))
    return facts


def _sent_requests(source: SupportsExecute) -> dict[int, list[tuple[str, float, str | None]]]:
    rows = source.execute(
        "SELECT couple_id, campaign, sent_at, message_id FROM requests WHERE sent_at IS NOT NULL",
        (),
    ).fetchall()
    sent: dict[int, list[tuple[str, float, str | None]]] = {}
    for couple_id, campaign, sent_at, message_id in rows:
        sent.setdefault(int(couple_id), []).append((campaign, float(sent_at), message_id))
    return sent
