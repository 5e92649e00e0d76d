"""plaudit ctl request add/list/show and template preview over a real control socket."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from plaudit.config.model import CampaignConfig, CampaignStep, Config, VendorConfig
from plaudit.journal import Journal
from plaudit.messaging.preview import preview_step
from plaudit.messaging.requests import RequestError
from tests.support import run_ctl_against

TEXT = (
    "Dear {{ couple_names }}, thank you for {{ wedding_date }} at {{ venue }}.\n"
    "{% for link in review_links %}{{ link.platform }}: {{ link.url }}\n{% endfor %}"
    "Unsubscribe: {{ unsubscribe_link }}"
)
BROKEN = "Dear {{ couple_names }},\nthanks for {{ wedding_day }}.\n"
UNCLOSED = "Dear {{ couple_names }},\n{% if venue %}\nat {{ venue }}\n"


def make_config(*, second_text: str = TEXT) -> Config:
    steps = [
        CampaignStep(
            delay_days=10,
            subject="Thank you, {{ couple_names }}",
            text=TEXT,
            html="<p>Dear {{ couple_names }}</p>",
        ),
        CampaignStep(delay_days=7, subject="A reminder", text=second_text),
    ]
    return Config(
        vendor=VendorConfig(
            name="Willow Studio",
            postal_address="12 Elm Street, Springfield, IL 62701",
            from_address="hello@willow.example",
            timezone="America/Chicago",
            review_links={
                "google": "https://reviews.invalid/google",
                "knot": "https://reviews.invalid/knot",
            },
            unsubscribe_url="https://willow.example/unsubscribe",
        ),
        campaigns=[CampaignConfig(name="after-wedding", steps=steps)],
    )


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    opened = Journal.open(tmp_path / "journal.sqlite3")
    yield opened
    opened.close()


async def run_ctl(
    journal: Journal, sock_path: Path, *argv: str, config: Config | None = None
) -> int:
    return await run_ctl_against(journal, sock_path, argv, config=config or make_config())


ANA = (
    "request",
    "add",
    "--name",
    "Ana Pires",
    "--name",
    "Ben Cole",
    "--email",
    "ana@example.com",
    "--email",
    "ben@example.com",
    "--wedding-date",
    "2026-05-02",
    "--venue",
    "Orchard Barn",
    "--timezone",
    "America/New_York",
)


async def test_add_new_couple_schedules_first_step(
    journal: Journal, sock_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = await run_ctl(journal, sock_path, "--json", *ANA)
    result = json.loads(capsys.readouterr().out)
    couples = journal.query("SELECT names, emails, timezone FROM couples")
    requests = journal.query("SELECT campaign, step, state, scheduled_at FROM requests")
    jobs = journal.query("SELECT kind, key FROM jobs")

    assert code == 0
    assert result["couple_created"] is True
    assert couples == [
        ('["Ana Pires","Ben Cole"]', '["ana@example.com","ben@example.com"]', "America/New_York")
    ]
    # Ten days after 2026-05-02, at 10:00 in New York (UTC-4 in May).
    assert requests == [("after-wedding", 0, "scheduled", 1778594400.0)]
    assert jobs == [("request.send", f"request:{result['request']}")]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("--email", "ana@@example.com"), "--email 'ana@@example.com': invalid e-mail address"),
        (("--phone", "555-0100"), "--phone '555-0100': invalid phone number"),
        (("--wedding-date", "16th of May"), "--wedding-date '16th of May': invalid date"),
        (("--timezone", "Mars/Olympus"), "--timezone 'Mars/Olympus': unknown time zone"),
    ],
)
async def test_add_rejects_invalid_field(
    journal: Journal,
    sock_path: Path,
    capsys: pytest.CaptureFixture[str],
    change: tuple[str, str],
    message: str,
) -> None:
    argv = list(ANA)
    option, value = change
    if option in argv:
        argv[argv.index(option) + 1] = value
    else:
        argv += [option, value]
    code = await run_ctl(journal, sock_path, *argv)
    stored = journal.query("SELECT count(*) FROM couples")

    assert code == 1
    assert message in capsys.readouterr().err
    assert stored == [(0,)]


async def test_add_needs_name_email_and_date(
    journal: Journal, sock_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = await run_ctl(journal, sock_path, "request", "add", "--email", "ana@example.com")

    assert code == 1
    assert "needs --name, --wedding-date" in capsys.readouterr().err


async def test_add_twice_rejected_without_change(
    journal: Journal, sock_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await run_ctl(journal, sock_path, *ANA)
    capsys.readouterr()
    argv = [*ANA[:-2], "--timezone", "Europe/Lisbon"]
    code = await run_ctl(journal, sock_path, *argv)
    zones = journal.query("SELECT timezone FROM couples")

    assert code == 1
    assert "already has requests in campaign 'after-wedding'" in capsys.readouterr().err
    # The rejected command changed nothing, not even the couple's details.
    assert zones == [("America/New_York",)]


async def test_add_for_stored_couple(
    journal: Journal, sock_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await run_ctl(journal, sock_path, *ANA)
    second = CampaignConfig(
        name="anniversary", steps=[CampaignStep(delay_days=365, subject="Hi", text="Hello")]
    )
    base = make_config()
    config = Config(vendor=base.vendor, campaigns=[*base.campaigns, second])
    capsys.readouterr()

    code = await run_ctl(
        journal,
        sock_path,
        "request",
        "add",
        "--couple",
        "1",
        "--campaign",
        "anniversary",
        config=config,
    )
    unknown = await run_ctl(
        journal, sock_path, "request", "add", "--couple", "9", "--campaign", "x", config=config
    )
    campaigns = journal.query("SELECT campaign FROM requests ORDER BY id")

    assert code == 0
    assert unknown == 1
    assert "unknown campaign 'x'; campaigns in the config: after-wedding, anniversary" in (
        capsys.readouterr().err
    )
    assert campaigns == [("after-wedding",), ("anniversary",)]


async def test_list_and_show(
    journal: Journal, sock_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await run_ctl(journal, sock_path, *ANA)
    with journal.transaction() as tx:
        tx.execute(
            "UPDATE requests SET state = 'stopped', last_error = 'stopped: unsubscribe'"
            " WHERE id = 1"
        )
    capsys.readouterr()

    assert await run_ctl(journal, sock_path, "request", "list") == 0
    table = capsys.readouterr().out
    assert await run_ctl(journal, sock_path, "request", "list", "--state", "sent") == 0
    empty = capsys.readouterr().out
    assert await run_ctl(journal, sock_path, "request", "show", "1") == 0
    shown = capsys.readouterr().out
    assert await run_ctl(journal, sock_path, "--json", "request", "show", "1") == 0
    detail = json.loads(capsys.readouterr().out)
    assert await run_ctl(journal, sock_path, "request", "show", "5") == 1
    missing = capsys.readouterr().err

    assert "Ana Pires & Ben Cole" in table
    assert "stopped" in table
    assert empty == "no requests match\n"
    assert "stop reason: stopped: unsubscribe" in shown
    assert "campaign after-wedding step 1 (email), stopped" in shown
    assert detail["couple"]["emails"] == ["ana@example.com", "ben@example.com"]
    assert [step["state"] for step in detail["steps"]] == ["stopped"]
    assert detail["job"]["state"] == "ready"
    assert "no request with id 5" in missing


async def test_preview_with_sample_values(
    journal: Journal, sock_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = await run_ctl(journal, sock_path, "template", "preview", "--step", "1")
    text = capsys.readouterr().out

    assert code == 0
    assert "after-wedding step 1 (email), sample couple" in text
    assert "Subject: Thank you, Ana Pires & Ben Cole" in text
    assert "google: https://reviews.invalid/google" in text
    assert "12 Elm Street, Springfield, IL 62701" in text
    assert "--- html ---" in text
    assert "unsubscribe: https://willow.example/unsubscribe/preview" in text


async def test_preview_with_stored_couple(
    journal: Journal, sock_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await run_ctl(
        journal,
        sock_path,
        *ANA[:2],
        "--name",
        "Lena Vogel",
        "--email",
        "l@example.net",
        "--wedding-date",
        "2026-01-24",
        "--venue",
        "Gut Sonnenhof",
    )
    capsys.readouterr()
    code = await run_ctl(
        journal, sock_path, "--json", "template", "preview", "--step", "2", "--couple", "1"
    )
    result = json.loads(capsys.readouterr().out)

    assert code == 0
    assert result["sample"] is False
    assert result["subject"] == "A reminder"
    assert "Dear Lena Vogel, thank you for January 24, 2026 at Gut Sonnenhof." in result["text"]
    assert [link["platform"] for link in result["review_links"]] == ["google", "knot"]
    assert result["list_unsubscribe"] == ["https://willow.example/unsubscribe/preview"]


@pytest.mark.parametrize(
    ("source", "line", "words"),
    [
        (BROKEN, 2, "'wedding_day' is undefined"),
        (UNCLOSED, 4, "expected tag endif"),
    ],
)
def test_preview_names_template_and_line(source: str, line: int, words: str) -> None:
    result = preview_step(make_config(second_text=source), None, 2, None)

    assert result["error"]["part"] == "text"
    assert result["error"]["line"] == line
    assert words in result["error"]["message"]
    assert "after-wedding step 2" in result["error"]["message"]


async def test_preview_error_printed(
    journal: Journal, sock_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = make_config(second_text=BROKEN)
    code = await run_ctl(journal, sock_path, "template", "preview", "--step", "2", config=config)

    assert code == 0
    assert "after-wedding step 2 (email), sample couple: template error at text line 2" in (
        capsys.readouterr().out
    )


@pytest.mark.parametrize(
    ("campaign", "step", "message"),
    [
        ("nope", 1, "unknown campaign 'nope'"),
        (None, 3, "has steps 1 to 2, not 3"),
    ],
)
def test_preview_rejects_unknown_step(campaign: str | None, step: int, message: str) -> None:
    with pytest.raises(RequestError, match=message):
        preview_step(make_config(), campaign, step, None)
