"""The restart-budget decision step, driven with plain numbers and no Trio run."""

from __future__ import annotations

from plaudit.daemon.restart_policy import (
    RestartPolicy,
    RestartVerdict,
    RestartWindow,
    decide_restart,
)


def _window(max_restarts: int, within_seconds: float = 60.0) -> RestartWindow:
    return RestartWindow(RestartPolicy(max_restarts=max_restarts, within_seconds=within_seconds))


def test_restarts_numbered_within_window() -> None:
    child, tree = _window(3), _window(10)

    numbers = [decide_restart(child, tree, now).restart_number for now in (1.0, 2.0, 3.0)]

    assert numbers == [1, 2, 3]
    assert len(tree) == 3


def test_spent_child_budget_fails() -> None:
    child, tree = _window(2), _window(10)
    decide_restart(child, tree, 1.0)
    decide_restart(child, tree, 2.0)

    decision = decide_restart(child, tree, 3.0)

    assert decision.verdict is RestartVerdict.FAIL
    assert len(child) == 2
    assert len(tree) == 2


def test_spent_intensity_escalates() -> None:
    tree = _window(1)
    decide_restart(_window(5), tree, 1.0)
    other_child = _window(5)

    decision = decide_restart(other_child, tree, 2.0)

    assert decision.verdict is RestartVerdict.ESCALATE
    assert len(other_child) == 0


def test_child_budget_checked_before_intensity() -> None:
    child, tree = _window(0), _window(0)

    assert decide_restart(child, tree, 1.0).verdict is RestartVerdict.FAIL


def test_old_restarts_leave_window() -> None:
    child, tree = _window(1, within_seconds=10.0), _window(10)
    decide_restart(child, tree, 0.0)

    rejected = decide_restart(child, tree, 9.0)
    admitted = decide_restart(child, tree, 10.0)

    assert rejected.verdict is RestartVerdict.FAIL
    assert admitted.verdict is RestartVerdict.RESTART
    assert admitted.restart_number == 1
