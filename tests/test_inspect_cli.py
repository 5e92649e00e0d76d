"""``plaudit inspect`` run as a real process: one JSON object on stdout, clean errors."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPOSITORY = Path(__file__).resolve().parents[1]
FIXTURES = REPOSITORY / "tests" / "fixtures" / "mail"


def run_inspect(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "plaudit", "inspect", *arguments],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def inspect_json(*arguments: str) -> dict[str, Any]:
    completed = run_inspect(*arguments)
    assert completed.returncode == 0, completed.stderr
    lines = completed.stdout.splitlines()
    assert len(lines) == 1
    result: dict[str, Any] = json.loads(lines[0])
    return result


@pytest.mark.parametrize(
    ("report_type", "name", "kind"),
    [
        ("bounce", "dsn_postfix_user_unknown.eml", "hard_bounce"),
        ("bounce", "autoreply_german.eml", "not_bounce"),
        ("arf", "arf_abuse.eml", "complaint"),
        ("arf", "arf_auth_failure.eml", "dmarc_failure"),
        ("dmarc", "dmarc_aggregate.xml", "dmarc_aggregate"),
        ("dmarc", "tls_report.json", "smtp_tls"),
        ("dmarc", "plain_letter.eml", "invalid"),
    ],
)
def test_inspect_prints_kind(report_type: str, name: str, kind: str) -> None:
    result = inspect_json(report_type, str(FIXTURES / name))

    assert result["kind"] == kind


@pytest.mark.parametrize(
    ("report_type", "name"), [("bounce", "exim_failed.eml"), ("arf", "arf_abuse.eml")]
)
def test_bounce_and_arf_share_leading_keys(report_type: str, name: str) -> None:
    result = inspect_json(report_type, str(FIXTURES / name))

    assert {"kind", "final", "status", "recipient", "reason"} <= result.keys()


def test_bounce_output_values() -> None:
    result = inspect_json("bounce", str(FIXTURES / "exim_failed.eml"))

    assert result["final"] is True
    assert result["status"] == "5.1.1"
    assert result["recipient"] == "sofia@example.net"
    assert result["original_message_id"] == "<request.22bb.step1@mail.example.com>"


def test_dmarc_output_has_records(tmp_path: Path) -> None:
    path = tmp_path / "report.xml.gz"
    path.write_bytes(gzip.compress((FIXTURES / "dmarc_aggregate.xml").read_bytes()))

    result = inspect_json("dmarc", str(path))

    assert len(result["records"]) == 3
    assert result["records"][0]["dmarc_pass"] is True


@pytest.mark.parametrize("make_path", ["missing", "directory"])
def test_unreadable_file_exits_1_with_one_line(tmp_path: Path, make_path: str) -> None:
    path = tmp_path / "missing.eml" if make_path == "missing" else tmp_path

    completed = run_inspect("bounce", str(path))

    assert completed.returncode == 1
    assert completed.stdout == ""
    assert completed.stderr.count("\n") == 1
    assert str(path) in completed.stderr
    assert "Traceback" not in completed.stderr


def test_binary_junk_still_prints_json(tmp_path: Path) -> None:
    path = tmp_path / "junk.bin"
    path.write_bytes(bytes(range(256)) * 40)

    for report_type in ("bounce", "arf", "dmarc"):
        result = inspect_json(report_type, str(path))

        assert result["kind"] in {"unknown", "not_bounce", "invalid"}
