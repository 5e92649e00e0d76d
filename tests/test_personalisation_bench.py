"""bench/personalisation.py runs end to end and ends with its JSON figures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "personalisation.py"


def run_bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(BENCH), *args],
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )


def test_bench_json_last_line() -> None:
    finished = run_bench("--json", "--couples", "2000", "--seed", "5")

    assert finished.returncode == 0, finished.stderr
    lines = finished.stdout.strip().splitlines()
    figures = json.loads(lines[-1])
    assert set(figures) >= {
        "relative_lift",
        "lift_ci_low",
        "lift_ci_high",
        "send_time_oracle_share",
        "channel_lift",
        "seeds",
    }
    assert set(figures["details"]["channel_picks"]) == {"email", "sms"}
    assert figures["seeds"] == {"population": 5, "policy": 6, "outcomes": 7}
    assert figures["lift_ci_low"] <= figures["relative_lift"] <= figures["lift_ci_high"]
    assert lines[0] == "seeds: population 5, policy 6, outcomes 7"


def test_bench_repeats_with_same_seeds() -> None:
    first = run_bench("--json", "--couples", "1600", "--seed", "9")
    second = run_bench("--json", "--couples", "1600", "--seed", "9")

    assert first.returncode == 0, first.stderr
    figures = json.loads(first.stdout.strip().splitlines()[-1])
    repeated = json.loads(second.stdout.strip().splitlines()[-1])
    figures["details"].pop("seconds")
    repeated["details"].pop("seconds")
    assert figures == repeated


def test_bench_rejects_tiny_population() -> None:
    finished = run_bench("--couples", "10")

    assert finished.returncode != 0
    assert "--couples must be at least 800" in finished.stderr


@pytest.mark.slow
def test_bench_default_seed_meets_targets() -> None:
    # A generous --seconds so a loaded machine still simulates the whole
    # population: the figures depend only on the seed once every couple runs.
    finished = run_bench("--json", "--seconds", "3600")

    assert finished.returncode == 0, finished.stderr
    figures = json.loads(finished.stdout.strip().splitlines()[-1])
    assert figures["details"]["couples"] == 40_000
    assert figures["relative_lift"] >= 0.20
    assert figures["lift_ci_low"] > 0
    assert figures["send_time_oracle_share"] >= 0.8
    # SMS converts better on average in the simulated population, so the
    # learned channel choice beats always sending the first channel, e-mail.
    assert figures["channel_lift"] > 0
