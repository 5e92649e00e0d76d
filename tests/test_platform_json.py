"""``plaudit inspect platform-json`` on hand-written payloads of each platform."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from plaudit.connectors.platform_json import parse_platform_json
from plaudit.errors import PlauditError

FACEBOOK = {
    "data": [
        {
            "created_time": "2024-05-01T10:00:00+0000",
            "recommendation_type": "negative",
            "review_text": "Late to the ceremony.",
            "reviewer": {"id": "5", "name": "Tom B"},
            "open_graph_story": {"id": "301_9"},
        },
        {"created_time": "2017-02-01T10:00:00+0000", "rating": 4, "reviewer": {"name": "Al"}},
    ]
}
TRUSTPILOT = {
    "reviews": [
        {
            "id": "60aa01",
            "stars": 3,
            "title": "Fine",
            "text": "Good food.",
            "createdAt": "2024-05-01T10:00:00Z",
            "consumer": {"displayName": "Mia"},
            "companyReply": {"text": "Thanks Mia", "createdAt": "2024-05-03T10:00:00Z"},
        }
    ]
}


def records(platform: str, body: Any) -> list[dict[str, Any]]:
    return parse_platform_json(platform, json.dumps(body).encode())


def test_facebook_recommendation_and_stars() -> None:
    negative, legacy = records("facebook", FACEBOOK)
    assert negative["platform_review_id"] == "301_9"
    assert negative["rating"] == "negative"
    assert legacy["rating"] == 4
    assert legacy["platform_review_id"].startswith("derived-")


def test_trustpilot_reply_object() -> None:
    [record] = records("trustpilot", TRUSTPILOT)
    assert record["rating"] == 3
    assert record["text"] == "Fine\n\nGood food."
    assert record["reply"] == {"text": "Thanks Mia", "updated_at": "2024-05-03T10:00:00.000Z"}


def test_unknown_platform_rejected() -> None:
    with pytest.raises(PlauditError, match="unknown platform 'myspace'"):
        parse_platform_json("myspace", b"{}")


def test_truncated_json_rejected() -> None:
    with pytest.raises(PlauditError, match="invalid JSON"):
        parse_platform_json("yelp", b'{"reviews": [')


def test_top_level_array_rejected() -> None:
    with pytest.raises(PlauditError, match="JSON object"):
        parse_platform_json("yelp", b"[]")


def test_malformed_review_names_path() -> None:
    with pytest.raises(PlauditError, match=r"\$\.reviews\[0\]\.stars"):
        records("trustpilot", {"reviews": [TRUSTPILOT["reviews"][0] | {"stars": 0}]})


def test_cli_prints_one_line_per_review(tmp_path: Path) -> None:
    path = tmp_path / "ratings.json"
    path.write_text(json.dumps(FACEBOOK), encoding="utf-8")
    command = [sys.executable, "-m", "plaudit", "inspect", "platform-json", "--platform"]
    result = subprocess.run(
        [*command, "facebook", str(path)], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    assert json.loads(lines[0])["platform"] == "facebook"


def test_cli_bad_file_exits_one(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text("{", encoding="utf-8")
    command = [sys.executable, "-m", "plaudit", "inspect", "platform-json", "--platform", "yelp"]
    result = subprocess.run(
        [*command, str(path)], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 1
    assert "broken.json" in result.stderr
