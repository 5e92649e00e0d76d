"""``inspect platform-json`` over the real API payloads in the corpus."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from plaudit.connectors.platform_json import inspect_platform_json

pytestmark = pytest.mark.conformance

KEYS = {
    "platform",
    "platform_review_id",
    "rating",
    "text",
    "author",
    "created_at",
    "updated_at",
    "reply",
}


def inspect(platform: str, path: Path) -> list[dict[str, Any]]:
    out = io.StringIO()
    assert inspect_platform_json(platform, str(path), out=out) == 0
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_google_review_list(corpus_dir: Path) -> None:
    records = inspect("google", corpus_dir / "platform-json" / "gbpmock_review_list_response.json")
    # The file repeats one reviewId; a sync keeps one review per id.
    assert len(records) == 1
    assert set(records[0]) == KEYS
    assert records[0]["rating"] == 5
    assert records[0]["reply"]["text"]
    assert records[0]["created_at"].endswith("Z")


def test_google_review_detail(corpus_dir: Path) -> None:
    path = corpus_dir / "platform-json" / "gbpmock_review_detail_response.json"
    [record] = inspect("google", path)
    assert set(record) == KEYS
    assert record["author"]
    assert record["updated_at"] >= record["created_at"]


def test_google_non_review_files_list_nothing(corpus_dir: Path) -> None:
    for name in ("gbpmock_account_list_response.json", "gbpmock_location_list_response.json"):
        assert inspect("google", corpus_dir / "platform-json" / name) == []


def test_yelp_old_shape_gets_stable_ids(corpus_dir: Path) -> None:
    path = corpus_dir / "platform-json" / "yelpdocs_businesses-id-reviews.json"
    first = inspect("yelp", path)
    second = inspect("yelp", path)
    raw = json.loads(path.read_text(encoding="utf-8"))["reviews"]
    assert len(first) == len(raw)
    assert [r["platform_review_id"] for r in first] == [r["platform_review_id"] for r in second]
    assert len({r["platform_review_id"] for r in first}) == len(first)
    for record, source in zip(first, raw, strict=True):
        assert set(record) == KEYS
        assert record["rating"] == source["rating"]
        assert record["author"] == source["user"]["name"]
        assert record["platform_review_id"] in source["url"]
        assert record["created_at"] is None
