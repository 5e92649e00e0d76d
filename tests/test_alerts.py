from pathlib import Path

import pytest

from plaudit.alerts import ALERT_JOB, get_alert, list_alerts, raise_alert, resolve_alert
from plaudit.journal import Journal


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    return Journal.open(tmp_path / "journal.sqlite3", instance="alerts-test")


def alert_jobs(journal: Journal) -> list[tuple[str, str]]:
    with journal.transaction() as tx:
        rows = tx.execute("SELECT kind, key FROM jobs WHERE kind = ?", (ALERT_JOB,)).fetchall()
    return [(str(row[0]), str(row[1])) for row in rows]


def test_raise_twice_counts_repeat(journal: Journal) -> None:
    with journal.transaction() as tx:
        first = raise_alert(
            tx, source="health", key="google/a", severity="warning", summary="degraded"
        )
    with journal.transaction() as tx:
        second = raise_alert(
            tx, source="health", key="google/a", severity="critical", summary="down"
        )
        alert = get_alert(tx, first)

    assert first == second
    assert alert is not None
    assert alert.repeats == 1
    assert alert.severity == "critical"
    assert alert.summary == "down"
    assert alert_jobs(journal) == [(ALERT_JOB, f"alert:{first}")]


def test_resolved_alert_reopens(journal: Journal) -> None:
    with journal.transaction() as tx:
        first = raise_alert(tx, source="webhooks", key="crm", severity="critical", summary="off")
        assert resolve_alert(tx, source="webhooks", key="crm")
        assert not resolve_alert(tx, source="webhooks", key="crm")
    with journal.transaction() as tx:
        second = raise_alert(
            tx, source="webhooks", key="crm", severity="critical", summary="off", detail={"n": 2}
        )
        open_alerts = list_alerts(tx, open_only=True)
        every_alert = list_alerts(tx)

    assert second != first
    assert [alert.id for alert in open_alerts] == [second]
    assert open_alerts[0].detail == {"n": 2}
    assert {alert.id for alert in every_alert} == {first, second}
    assert len(alert_jobs(journal)) == 2


def test_unknown_severity_rejected(journal: Journal) -> None:
    with journal.transaction() as tx, pytest.raises(ValueError, match="severity 'loud'"):
        raise_alert(tx, source="x", key="y", severity="loud", summary="z")  # type: ignore[arg-type]
