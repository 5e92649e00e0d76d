"""``bench/sync.py`` end to end on a small world: its figures and its checks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


def test_small_run_prints_figures() -> None:
    command = [
        sys.executable,
        str(ROOT / "bench" / "sync.py"),
        "--json",
        "--seconds=120",
        "--repeats=1",
        "--google-locations=2",
        "--google-reviews=60",
        "--facebook-pages=1",
        "--facebook-reviews=40",
        "--trustpilot-units=1",
        "--trustpilot-reviews=40",
    ]
    finished = subprocess.run(
        command, capture_output=True, text=True, timeout=300, cwd=ROOT, check=False
    )
    assert finished.returncode == 0, finished.stderr[-2000:]
    figures = json.loads(finished.stdout.strip().splitlines()[-1])

    # 2 x 60 Google reviews, 40 Facebook, 40 Trustpilot and 2 x 3 Yelp excerpts.
    assert figures["expected_reviews"] == 206
    assert figures["reviews"] == 206
    assert figures["created_events"] == 206
    assert figures["decoded_reviews"] == 206
    assert figures["reviews_per_s"] > 0
    assert figures["decode_reviews_per_s"] > 0
    assert figures["ratio"] == pytest.approx(
        figures["reviews_per_s"] / figures["decode_reviews_per_s"], rel=1e-2
    )
