"""``plaudit demo`` end to end: sandbox, daemon process, and the agreement check."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support import plaudit_env

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class DemoRun:
    result: subprocess.CompletedProcess[str]
    summary: dict[str, Any]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    """One ``plaudit demo --json`` run, shared by the tests that read its summary."""
    command = [
        sys.executable,
        "-m",
        "plaudit",
        "demo",
        "--seconds",
        "30",
        "--json",
        "--state-dir",
        str(tmp_path_factory.mktemp("demo")),
    ]
    # The sandbox script lasts half of --seconds; the other half leaves room to converge.
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=180, env=plaudit_env(), check=False
    )
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    return DemoRun(result=result, summary=summary)


def test_demo_json_agrees_with_truth(demo_run: DemoRun) -> None:
    result, summary = demo_run.result, demo_run.summary
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


# Every fault class the script queues, and the cause the daemon counts for it.
SCRIPTED = {
    "status": ("server_error", "rate_limited"),
    "reset": ("connection",),
    "malformed": ("malformed_body",),
    "missing_fields": ("missing_field",),
    "timeout": ("timeout",),
}


def test_demo_faults_reach_every_api_platform(demo_run: DemoRun) -> None:
    result, summary = demo_run.result, demo_run.summary
    assert result.returncode == 0, result.stderr[-3000:]
    assert summary["agrees_with_truth"] is True
    for platform in ("google", "facebook", "trustpilot", "yelp"):
        report = summary["platforms"][platform]
        injected, seen = report["faults_injected"], report["errors_seen"]
        for kind, causes in SCRIPTED.items():
            assert injected.get(kind, 0) >= 1, (platform, kind)
            for cause in causes:
                assert seen.get(cause, 0) >= 1, (platform, cause)
        assert injected["status"] == 3, platform
    for platform in ("google", "trustpilot"):
        report = summary["platforms"][platform]
        assert report["faults_injected"]["expired_token"] == 1, platform
        assert report["errors_seen"]["unauthorized"] >= 1, platform
    for platform in ("facebook", "yelp"):
        assert "expired_token" in summary["platforms"][platform]["faults_not_applicable"]
    # The page-token loop on Google, and the cursor and page loops on Facebook and Trustpilot.
    for platform in ("google", "facebook", "trustpilot"):
        assert summary["platforms"][platform]["faults_injected"]["page_loop"] >= 1, platform


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


def test_summary_text_describes_each_platform(
    demo_run: DemoRun, capsys: pytest.CaptureFixture[str]
) -> None:
    from plaudit.demo import print_summary

    print_summary(demo_run.summary)
    text = capsys.readouterr().out
    google = demo_run.summary["platforms"]["google"]
    created = google["review.created_events"]
    assert f"google: {google['reviews']} reviews, {google['deleted']} deleted; " in text
    assert f"{created} created" in text
    assert "errors retried:" in text
    assert "_events" not in text
