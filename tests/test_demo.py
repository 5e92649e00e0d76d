"""``plaudit demo`` end to end: sandbox, daemon process, and the agreement check."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import plaudit_env

pytestmark = pytest.mark.slow


def test_demo_json_agrees_with_truth(tmp_path: Path) -> None:
    command = [
        sys.executable,
        "-m",
        "plaudit",
        "demo",
        "--seconds",
        "15",
        "--json",
        "--state-dir",
        str(tmp_path),
    ]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=120, env=plaudit_env(), check=False
    )
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert result.returncode == 0, result.stderr[-3000:]
    assert summary["agrees_with_truth"] is True
    assert summary["discrepancies"] == []
    assert summary["reviews_synced"] > 0
    assert summary["reviews_synced"] == summary["truth_reviews"]
    platforms = summary["platforms"]
    assert sorted(platforms) == [
        "facebook",
        "google",
        "trustpilot",
        "weddingwire",
        "yelp",
        "zola",
    ]
    # The storefront profile polled through robots.txt and conditional GET.
    assert platforms["weddingwire"]["reviews"] > 0
    # The mailbox profile read every scripted notice from its Maildir.
    assert platforms["zola"]["reviews"] == 6
    assert sum(counts["reviews"] for counts in platforms.values()) == summary["reviews_synced"]
    assert "reviews synced" in result.stderr
    # Every review.created event reached the receiver with a valid signature,
    # through the scripted 500 and slow response.
    assert summary["webhooks_missing"] == 0
    created = sum(
        counts.get("review.created_events", 0) for counts in summary["platforms"].values()
    )
    assert summary["webhooks_delivered"] >= created
    assert summary["webhooks_failed"] >= 1
    assert summary["webhooks_bad_signatures"] == 0
    # Three couples consented to e-mail and one declined it.  One couple also
    # consented to SMS and subscribed to push.  Two have neither, so their SMS
    # and push steps are suppressed, and the couple who declined e-mail is stopped.
    assert summary["requests_sent"] == {"email": 3, "sms": 1, "push": 1}
    assert summary["requests_suppressed"] == 5
    assert summary["smtp_messages_received"] == 3
    assert summary["sms_messages_received"] == 1
    assert summary["sms_status_callbacks"] == 2
    assert summary["push_messages_received"] == 1


def test_demo_rejects_too_short_run(tmp_path: Path) -> None:
    command = [
        sys.executable,
        "-m",
        "plaudit",
        "demo",
        "--seconds",
        "1",
        "--state-dir",
        str(tmp_path),
    ]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=60, env=plaudit_env(), check=False
    )
    assert result.returncode == 1
    assert "--seconds" in result.stderr
    assert "Traceback" not in result.stderr
