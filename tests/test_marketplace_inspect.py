"""``plaudit inspect storefront`` and ``plaudit inspect notification`` run as real processes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures" / "marketplace"


def plaudit(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "plaudit.cli", "inspect", *arguments],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_inspect_listing_page() -> None:
    result = plaudit("storefront", "--platform", "hitched", str(FIXTURES / "listing_hitched.html"))

    assert result.returncode == 0, result.stderr
    output = json.loads(result.stdout)
    assert [vendor["name"] for vendor in output["vendors"]] == [
        "Willow Barn",
        "Oak & Ivy Hall",
        "The Old Mill",
    ]
    assert set(output["vendors"][0]) == {"name", "rating", "review_count", "url"}


def test_inspect_storefront_page() -> None:
    result = plaudit(
        "storefront", "--platform", "hitched", str(FIXTURES / "storefront_jsonld.html")
    )

    assert result.returncode == 0, result.stderr
    output = json.loads(result.stdout)
    assert output["vendor"]["name"] == "Willow Barn"
    assert len(output["reviews"]) == 2


def test_inspect_notification() -> None:
    result = plaudit("notification", str(FIXTURES / "notify_theknot_html.eml"))

    assert result.returncode == 0, result.stderr
    output = json.loads(result.stdout)
    assert (output["platform"], output["reviewer"], output["rating"]) == (
        "theknot",
        "Renée K.",
        5.0,
    )


def test_inspect_blocked_page_fails() -> None:
    result = plaudit("storefront", "--platform", "hitched", str(FIXTURES / "challenge.html"))

    assert result.returncode == 1
    assert "bot challenge" in result.stderr
    assert result.stdout == ""


def test_inspect_storefront_needs_platform() -> None:
    result = plaudit("storefront", str(FIXTURES / "challenge.html"))

    assert result.returncode == 1
    assert "--platform" in result.stderr


def test_inspect_unknown_platform() -> None:
    result = plaudit("storefront", "--platform", "knot", str(FIXTURES / "challenge.html"))

    assert result.returncode == 1
    assert "unknown marketplace 'knot'" in result.stderr
