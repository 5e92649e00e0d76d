"""Deliverability parsers over every real bounce, complaint and DMARC file in the corpus.

Expectations come from two places: a hand-written table of files whose notes
state the outcome plainly, and rules that read each file's "What it
exercises" note in SOURCES.md (for example "Status 5.1.1; Action failed").
The derived expectations must agree at least at the stated rate; every
disagreement is listed in the terminal summary.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from plaudit.messaging.deliverability import parse_arf, parse_bounce, parse_dmarc

pytestmark = pytest.mark.conformance

# The parser meets all 117 expectations derived from the notes; the margin
# leaves room for a corpus update, and a larger drop means a regression.
MIN_DERIVED_AGREEMENT = 0.95


def files_in(corpus_dir: Path, folder: str) -> list[Path]:
    return sorted(path for path in (corpus_dir / folder).iterdir() if path.is_file())


def source_notes(corpus_dir: Path, section: str) -> dict[str, str]:
    """Return file name -> "What it exercises" for one "## section" table of SOURCES.md."""
    notes: dict[str, str] = {}
    inside = False
    for line in (corpus_dir / "SOURCES.md").read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            inside = line.startswith(f"## {section} ")
            continue
        cells = [cell.strip() for cell in line.split("|")]
        if inside and len(cells) > 7 and cells[1] not in {"File", ""} and "---" not in cells[1]:
            notes[cells[1]] = cells[6]
    return notes


def expected_bounce_kind(note: str) -> tuple[str, bool | None] | None:
    """Derive (kind, final) from a note, or None when the note does not settle it."""
    if "NOT a bounce" in note or "challenge-response" in note:
        # Challenge/response requests are not bounces, whatever status they carry.
        return ("not_bounce", None)

    codes = set(re.findall(r"\b([245]\.\d{1,3}\.\d{1,3})\b", note))
    if len(codes) != 1:
        return None
    (code,) = codes
    klass, subject, _detail = code.split(".")
    delayed = "Action delayed" in note
    if klass == "2":
        return ("not_bounce", True)
    if klass == "4":
        return ("soft_bounce", not delayed)
    if subject == "1":
        return ("hard_bounce", True)
    if code == "5.2.2":
        return ("soft_bounce", True)
    if subject == "7" and code != "5.7.0":
        return ("policy_block", True)
    return None


# Files whose notes state the outcome; checked one by one.
BOUNCE_TABLE = [
    ("bounceparser_aol-vacation.eml", "not_bounce", None),
    ("bounceparser_autoreply.eml", "not_bounce", None),
    ("bounceparser_bluebottle.eml", "not_bounce", None),
    ("bounceparser_polish-autoreply.eml", "not_bounce", None),
    ("bounceparser_spam-bogus-email-in-report.eml", "not_bounce", None),
    ("bounceparser_spam-with-image.eml", "not_bounce", None),
    ("bounceparser_warning-6.eml", "not_bounce", None),
    ("sisimai_is-not-bounce-01.eml", "not_bounce", None),
    ("sisimai_is-not-bounce-02.eml", "not_bounce", None),
    ("bounceparser_aol.unknown.eml", "hard_bounce", True),
    ("bounceparser_sendmail-host-unknown.eml", "hard_bounce", True),
    ("bounceparser_warning-4.eml", "soft_bounce", True),
    ("bounceparser_warning-8.eml", "soft_bounce", False),
    ("bounceparser_message-too-large.eml", "soft_bounce", True),
    ("bounceparser_spam-rejection-uribl.eml", "policy_block", True),
    ("bounceparser_qmail.unknown.eml", "hard_bounce", True),
    ("bounceparser_domino.unknown.eml", "hard_bounce", True),
    ("bounceparser_exchange.unknown.eml", "hard_bounce", True),
    ("phpbh_11.eml", "hard_bounce", True),
    ("phpbh_29.eml", "soft_bounce", False),
    ("phpbh_46.eml", "soft_bounce", False),
    ("phpbh_exchange1.eml", "hard_bounce", True),
    ("flufl_dsn_05.txt", "soft_bounce", False),
    ("flufl_dsn_14.txt", "hard_bounce", True),
    ("kumomta_rfc3464-obsolete_arrival_date.eml", "hard_bounce", True),
    ("sisimai_lhost-exim-02.eml", "hard_bounce", True),
    ("sisimai_lhost-gmail-01.eml", "hard_bounce", True),
    ("sisimai_lhost-qmail-02.eml", "hard_bounce", True),
    ("sisimai_lhost-yahoo-02.eml", "soft_bounce", True),
    ("sisimai_lhost-dragonfly-01.eml", "policy_block", True),
    ("sisimai_lhost-office365-02.eml", "hard_bounce", True),
    ("sisimai_lhost-amazonses-05.eml", "hard_bounce", True),
    ("sisimai_rfc3464-07.eml", "soft_bounce", False),
    ("sisimai_rfc3464-28.eml", "not_bounce", True),
    ("sisimai_rb-issue-368-bug.eml", "soft_bounce", True),
]


def test_every_bounce_file_parses(
    corpus_dir: Path, conformance_summary: dict[str, list[str]]
) -> None:
    counts: Counter[str] = Counter()
    for path in files_in(corpus_dir, "bounces"):
        result = parse_bounce(path.read_bytes())
        counts[result.kind] += 1
        assert result.reason, path.name

    conformance_summary["deliverability corpus: bounce kinds"] = [
        f"{kind}: {count}" for kind, count in counts.most_common()
    ]
    assert sum(counts.values()) == len(files_in(corpus_dir, "bounces"))


@pytest.mark.parametrize(("name", "kind", "final"), BOUNCE_TABLE)
def test_bounce_matches_note(corpus_dir: Path, name: str, kind: str, final: bool | None) -> None:
    result = parse_bounce((corpus_dir / "bounces" / name).read_bytes())

    assert result.kind == kind, result.reason
    assert result.final is final


def test_bounce_agrees_with_derived_notes(
    corpus_dir: Path, conformance_summary: dict[str, list[str]]
) -> None:
    notes = source_notes(corpus_dir, "bounces")
    checked = 0
    disagreements: list[str] = []
    for name, note in sorted(notes.items()):
        expected = expected_bounce_kind(note)
        path = corpus_dir / "bounces" / name
        if expected is None or not path.is_file():
            continue
        checked += 1
        result = parse_bounce(path.read_bytes())
        if (result.kind, result.final) != expected:
            disagreements.append(
                f"{name}: expected {expected}, got ({result.kind}, {result.final}): "
                f"{result.reason[:80]}"
            )

    rate = 1 - len(disagreements) / checked
    conformance_summary["deliverability corpus: bounce agreement with SOURCES.md"] = [
        f"{checked - len(disagreements)} of {checked} derived expectations met ({rate:.1%})",
        *disagreements,
    ]
    assert checked > 100
    assert rate >= MIN_DERIVED_AGREEMENT, disagreements


def test_every_arf_file_parses(corpus_dir: Path, conformance_summary: dict[str, list[str]]) -> None:
    notes = source_notes(corpus_dir, "arf")
    counts: Counter[str] = Counter()
    for path in files_in(corpus_dir, "arf"):
        report = parse_arf(path.read_bytes())
        counts[report.kind] += 1
        note = notes.get(path.name, "")
        loop_complaint = "complaint" in note.lower() and "non-ARF" in note
        if "feedback-type auth-failure" in note:
            assert report.kind == "dmarc_failure", path.name
        elif "feedback-type abuse" in note or "feedback-type opt-out" in note or loop_complaint:
            assert report.kind == "complaint", path.name

    conformance_summary["deliverability corpus: ARF kinds"] = [
        f"{kind}: {count}" for kind, count in counts.most_common()
    ]


@pytest.mark.parametrize(
    ("name", "recipient", "message_id"),
    [
        ("phpbh_fbl-hotmail.txt", "user47@hotmail.com", True),
        ("sisimai_arf-14.eml", "kijitora@y.example.com", True),
        ("phpbh_arf6.txt", "user45@hotmail.com", True),
    ],
)
def test_complaint_names_recipient(
    corpus_dir: Path, name: str, recipient: str, message_id: bool
) -> None:
    report = parse_arf((corpus_dir / "arf" / name).read_bytes())

    assert report.kind == "complaint"
    assert report.recipient == recipient
    assert (report.original_message_id is not None) is message_id


def test_every_dmarc_file_parses(
    corpus_dir: Path, conformance_summary: dict[str, list[str]]
) -> None:
    notes = source_notes(corpus_dir, "dmarc")
    counts: Counter[str] = Counter()
    for path in files_in(corpus_dir, "dmarc"):
        report = parse_dmarc(path.read_bytes())
        counts[report.kind] += 1
        note = notes.get(path.name, "")
        if "negative test" in note or note.startswith("malformed"):
            assert report.kind == "invalid", path.name
        elif "failure/forensic" in note:
            assert report.kind == "dmarc_failure", path.name
        elif "DMARC aggregate" in note:
            assert report.kind == "dmarc_aggregate", (path.name, report.reason)
            records = re.search(r"(\d+) record\(s\)", note)
            if records:
                assert len(report.records) == int(records.group(1)), path.name

    conformance_summary["deliverability corpus: DMARC kinds"] = [
        f"{kind}: {count}" for kind, count in counts.most_common()
    ]
