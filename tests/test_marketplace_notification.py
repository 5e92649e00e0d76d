"""New-review notification e-mails: plain, HTML-only, forwarded, quoted and attached."""

from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path

import pytest

from plaudit.connectors.marketplace.notification import (
    Notification,
    NotificationError,
    html_to_text,
    parse_notification,
)

FIXTURES = Path(__file__).parent / "fixtures" / "marketplace"


def parse(name: str) -> Notification:
    return parse_notification((FIXTURES / name).read_bytes(), source=name)


def test_plain_text_notice() -> None:
    notice = parse("notify_weddingwire_plain.eml")

    assert notice.platform == "weddingwire"
    assert notice.reviewer == "Jordan Ellis"
    assert notice.rating == 4.5
    assert notice.text.startswith("We could not have asked for a better team.")
    assert notice.text.endswith("where we found you.")
    assert notice.date == "2024-05-12"
    assert notice.link == "https://www.weddingwire.com/vendors/reviews/reply?reviewId=774411"
    assert notice.review_id == "774411"
    assert (notice.forwarded, notice.quoted) == (False, False)


def test_html_only_notice() -> None:
    notice = parse("notify_theknot_html.eml")

    assert notice.platform == "theknot"
    assert notice.reviewer == "Renée K."
    assert notice.vendor == "Lumen Photo Studio"
    assert notice.rating == 5.0
    assert notice.text == (
        "Our photos are beyond what we imagined. Thank you for capturing every little moment!"
    )
    assert notice.date == "2024-03-01"
    assert notice.review_id == "55120"


def test_forwarded_notice_uses_original() -> None:
    notice = parse("notify_hitched_forwarded.eml")

    assert notice.platform == "hitched"
    assert notice.forwarded is True
    assert notice.reviewer == "Ellie Carter"
    assert notice.vendor == "Oak & Ivy Hall"
    assert notice.rating == 5.0
    assert notice.text.startswith("From the first viewing")
    assert notice.text.endswith("keeping us calm.")
    # The forwarded header's date, not the forward's own Date header.
    assert notice.date == "2024-06-08"
    assert notice.review_id == "90817"


def test_quoted_reply_notice() -> None:
    notice = parse("notify_zola_quoted.eml")

    assert notice.platform == "zola"
    assert notice.quoted is True
    assert notice.reviewer == "Alex Moreno"
    assert notice.rating == 4.0
    assert notice.text == "Great music all night, the dance floor never emptied."
    assert notice.date == "2024-09-03"
    assert notice.review_id == "r-66301"


def test_notice_attached_as_message() -> None:
    inner = EmailMessage()
    inner["From"] = "Bridebook <hello@example.com>"
    inner["Subject"] = "You have a new review on Bridebook"
    inner["Date"] = "Thu, 02 May 2024 10:00:00 +0100"
    inner.set_content(
        'Hana Ito left you a review.\nRating: 5 out of 5\n"Calm, kind and on time."\n'
    )
    outer = EmailMessage()
    outer["From"] = "venue@example.com"
    outer["Subject"] = "Fwd: review"
    outer["Date"] = "Fri, 03 May 2024 10:00:00 +0100"
    outer.set_content("See attached.")
    outer.add_attachment(inner)

    notice = parse_notification(outer.as_bytes(), source="attached.eml")

    assert notice.platform == "bridebook"
    assert notice.forwarded is True
    assert notice.reviewer == "Hana Ito"
    assert notice.text == "Calm, kind and on time."
    assert notice.date == "2024-05-02"
    assert notice.review_id.startswith("c-")


def test_newsletter_is_rejected() -> None:
    with pytest.raises(NotificationError, match=r"notify_not_review\.eml is from WeddingWire"):
        parse("notify_not_review.eml")


def test_unknown_sender_is_rejected() -> None:
    message = b"From: someone@example.com\nSubject: hello\n\nRating: 5/5\n"

    with pytest.raises(NotificationError, match="names no known marketplace"):
        parse_notification(message, source="x.eml")


def test_same_notice_same_id() -> None:
    data = (
        (FIXTURES / "notify_weddingwire_plain.eml").read_bytes().replace(b"?reviewId=774411", b"")
    )

    first = parse_notification(data)
    second = parse_notification(data.replace(b"Tue, 14 May", b"Wed, 15 May"))

    assert first.review_id == second.review_id
    assert first.review_id.startswith("c-")


def test_html_to_text_keeps_links() -> None:
    text, links = html_to_text(
        '<p>Hi<br>there</p><blockquote>Loved it all</blockquote><a href="https://x.example.com/r">r</a>'
    )

    assert "Hi\nthere" in text
    assert "“Loved it all”" in text
    assert links == ["https://x.example.com/r"]


def test_spanish_notice() -> None:
    notice = parse("notify_bodas_spanish.eml")

    assert notice.platform == "bodas"
    assert notice.reviewer == "Marta G."
    assert notice.rating == 4.5
    assert notice.text == "Todo salió perfecto, el personal fue muy atento."
    assert notice.date == "2024-03-09"
    assert notice.review_id == "31337"


def test_placeholder_plain_part_uses_html() -> None:
    message = EmailMessage()
    message["From"] = "The Knot <pro@example.com>"
    message["Subject"] = "New review"
    message["Date"] = "Fri, 01 Mar 2024 15:30:00 +0000"
    message.set_content("View this e-mail in your browser.")
    message.add_alternative(
        "<p>Ivy L. wrote a review.</p><p>Rating: 4/5</p><blockquote>Kind and calm.</blockquote>",
        subtype="html",
    )

    notice = parse_notification(message.as_bytes())

    assert (notice.reviewer, notice.rating, notice.text) == ("Ivy L.", 4.0, "Kind and calm.")


def test_plain_part_preferred() -> None:
    message = EmailMessage()
    message["From"] = "The Knot <pro@example.com>"
    message["Date"] = "Fri, 01 Mar 2024 15:30:00 +0000"
    message.set_content('Ivy L. wrote a review.\nRating: 5/5\n"Plain text wins here."\n')
    message.add_alternative("<p>Rating: 3/5</p><blockquote>HTML text.</blockquote>", subtype="html")

    notice = parse_notification(message.as_bytes())

    assert (notice.rating, notice.text) == (5.0, "Plain text wins here.")
