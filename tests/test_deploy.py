"""The Grafana dashboard and alert rules in deploy/: valid, and on Plaudit's metrics only."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import plaudit.daemon.app  # noqa: F401  (registers every metric module's collectors)
from plaudit.metrics import REGISTRY

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "deploy" / "grafana" / "plaudit.json"
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
METRIC_NAME = re.compile(r"\bplaudit_[a-z0-9_]+")
PROMTOOL = shutil.which("promtool")


def exported_names() -> set[str]:
    """Every series name /metrics can expose, with the suffixes of counters and histograms."""
    names: set[str] = set()
    for metric in REGISTRY.collect():
        if metric.type == "counter":
            names |= {f"{metric.name}_total", f"{metric.name}_created"}
        elif metric.type == "histogram":
            names |= {f"{metric.name}_{suffix}" for suffix in ("bucket", "sum", "count", "created")}
        else:
            names.add(metric.name)
    return names


def dashboard_expressions() -> list[str]:
    document = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return [target["expr"] for panel in document["panels"] for target in panel.get("targets", [])]


def rule_expressions() -> list[str]:
    # Each rule writes its expression on one "expr:" line; promtool checks the YAML itself.
    text = RULES.read_text(encoding="utf-8")
    return re.findall(r"^\s*expr:\s*(.+)$", text, re.MULTILINE)


def test_dashboard_uses_exported_metrics_only() -> None:
    expressions = dashboard_expressions()
    used = {name for expr in expressions for name in METRIC_NAME.findall(expr)}
    assert expressions
    assert used - exported_names() == set()
    assert "plaudit_report_reviews" in used


def test_dashboard_shape() -> None:
    document = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    ids = [panel["id"] for panel in document["panels"]]
    assert len(ids) == len(set(ids))
    assert document["uid"] == "plaudit-overview"
    for panel in document["panels"]:
        if panel["type"] != "row":
            assert panel["targets"], panel["title"]
            assert panel["datasource"]["uid"] == "${datasource}"


def test_rules_use_exported_metrics_only() -> None:
    used = {name for expr in rule_expressions() for name in METRIC_NAME.findall(expr)}
    assert used
    assert used - exported_names() == set()


@pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool is not installed (Debian package prometheus); .ci/run installs it",
)
def test_promtool_accepts_rules() -> None:
    assert PROMTOOL is not None
    result = subprocess.run(
        [PROMTOOL, "check", "rules", str(RULES)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_exported_names_catch_a_typo() -> None:
    assert "plaudit_report_reviewz" not in exported_names()
    assert "plaudit_reviews_changed_total" in exported_names()
