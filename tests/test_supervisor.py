"""Supervision semantics, all on Trio's virtual clock (the ``autojump_clock`` fixture)."""

from __future__ import annotations

import itertools
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
import trio

from plaudit.config.model import SupervisorConfig
from plaudit.daemon.supervisor import (
    ChildContext,
    ChildSpec,
    ChildState,
    ChildStatistics,
    RestartPolicy,
    RestartType,
    Supervisor,
    SupervisorError,
    SupervisorEscalation,
    check_transition,
)
from plaudit.errors import IllegalTransitionError
from plaudit.metrics import REGISTRY

# Metrics live in one process-wide registry, so every child gets a fresh name.
_names = itertools.count()

# Restarts quickly and often enough that only the tests meant to exhaust a
# budget exhaust one.
LENIENT_POLICY = RestartPolicy(
    max_restarts=100, within_seconds=60.0, backoff_initial=0.1, backoff_max=1.0
)


def unique(prefix: str) -> str:
    return f"{prefix}-{next(_names)}"


class ChildCrash(RuntimeError):
    pass


@asynccontextmanager
async def running(supervisor: Supervisor) -> AsyncIterator[Supervisor]:
    async with trio.open_nursery() as nursery:
        await nursery.start(supervisor.run)
        yield supervisor
        await supervisor.stop()


def child_stats(supervisor: Supervisor, name: str) -> ChildStatistics:
    return next(c for c in supervisor.statistics().children if c.name == name)


async def wait_until(condition: Callable[[], bool]) -> None:
    # Polling on the virtual clock costs no real time and suits any condition.
    with trio.fail_after(3600):
        while not condition():
            await trio.sleep(0.01)


async def wait_for_state(supervisor: Supervisor, name: str, state: ChildState) -> None:
    await wait_until(lambda: child_stats(supervisor, name).state is state)


class Recorder:
    """A child that records each start time and ends by a scripted outcome per attempt."""

    def __init__(self, outcomes: Callable[[int], str]) -> None:
        self.outcomes = outcomes
        self.starts: list[float] = []

    async def __call__(self, ctx: ChildContext) -> None:
        self.starts.append(trio.current_time())
        outcome = self.outcomes(len(self.starts))
        if outcome == "crash":
            raise ChildCrash(f"attempt {len(self.starts)}")
        if outcome == "run":
            await ctx.stop_requested.wait()


async def ticker(counter: list[int], ctx: ChildContext) -> None:
    while not ctx.stop_requested.is_set():
        counter[0] += 1
        await trio.sleep(1)


def always(outcome: str) -> Callable[[int], str]:
    return lambda attempt: outcome


# --- restart types ------------------------------------------------------------


async def test_permanent_restarted_after_normal_exit(autojump_clock: trio.abc.Clock) -> None:
    name = unique("permanent")
    child = Recorder(lambda attempt: "return" if attempt < 3 else "run")
    supervisor = Supervisor("root", [ChildSpec(name, child, policy=LENIENT_POLICY)])

    async with running(supervisor):
        await wait_until(lambda: len(child.starts) == 3)
        await wait_for_state(supervisor, name, ChildState.RUNNING)

        assert child_stats(supervisor, name).restarts == 2


async def test_permanent_restarted_after_crash(autojump_clock: trio.abc.Clock) -> None:
    name = unique("permanent")
    child = Recorder(lambda attempt: "crash" if attempt < 3 else "run")
    supervisor = Supervisor("root", [ChildSpec(name, child, policy=LENIENT_POLICY)])

    async with running(supervisor):
        await wait_until(lambda: len(child.starts) == 3)
        await wait_for_state(supervisor, name, ChildState.RUNNING)

        assert child_stats(supervisor, name).restarts == 2


async def test_transient_restarted_only_after_crash(autojump_clock: trio.abc.Clock) -> None:
    name = unique("transient")
    child = Recorder(lambda attempt: "crash" if attempt == 1 else "return")
    spec = ChildSpec(name, child, restart=RestartType.TRANSIENT, policy=LENIENT_POLICY)
    supervisor = Supervisor("root", [spec])

    async with running(supervisor):
        await wait_for_state(supervisor, name, ChildState.STOPPED)
        await trio.sleep(60)

        assert len(child.starts) == 2
        assert child_stats(supervisor, name).state is ChildState.STOPPED


async def test_temporary_never_restarted(autojump_clock: trio.abc.Clock) -> None:
    name = unique("temporary")
    child = Recorder(always("crash"))
    spec = ChildSpec(name, child, restart=RestartType.TEMPORARY, policy=LENIENT_POLICY)
    supervisor = Supervisor("root", [spec])

    async with running(supervisor):
        await wait_for_state(supervisor, name, ChildState.STOPPED)
        await trio.sleep(60)

        stats = child_stats(supervisor, name)
        assert len(child.starts) == 1
        assert stats.restarts == 0
        assert stats.last_error == "ChildCrash('attempt 1')"


def test_restart_type_decisions() -> None:
    error = ChildCrash("x")

    assert RestartType.PERMANENT.restarts_after(None)
    assert RestartType.PERMANENT.restarts_after(error)
    assert not RestartType.TRANSIENT.restarts_after(None)
    assert RestartType.TRANSIENT.restarts_after(error)
    assert not RestartType.TEMPORARY.restarts_after(error)


# --- restart intensity and backoff ----------------------------------------------


async def test_exhausted_budget_fails_child_only(autojump_clock: trio.abc.Clock) -> None:
    crasher_name, sibling_name = unique("crasher"), unique("sibling")
    crasher = Recorder(always("crash"))
    policy = RestartPolicy(max_restarts=2, within_seconds=60.0, backoff_initial=0.5)
    ticks = [0]
    supervisor = Supervisor(
        "root",
        [
            ChildSpec(sibling_name, lambda ctx: ticker(ticks, ctx), policy=LENIENT_POLICY),
            ChildSpec(crasher_name, crasher, policy=policy),
        ],
    )

    async with running(supervisor):
        await wait_for_state(supervisor, crasher_name, ChildState.FAILED)
        ticks_at_failure = ticks[0]
        await trio.sleep(30)

        assert len(crasher.starts) == 3
        assert child_stats(supervisor, crasher_name).restarts == 2
        assert child_stats(supervisor, sibling_name).state is ChildState.RUNNING
        assert ticks[0] > ticks_at_failure


async def test_restarts_outside_window_forgotten(autojump_clock: trio.abc.Clock) -> None:
    name = unique("slow-crasher")
    ended = Recorder(always("return"))
    policy = RestartPolicy(
        max_restarts=2, within_seconds=10.0, backoff_initial=20.0, backoff_max=20.0
    )
    supervisor = Supervisor("root", [ChildSpec(name, ended, policy=policy)])

    async with running(supervisor):
        await wait_until(lambda: len(ended.starts) == 5)

        assert child_stats(supervisor, name).state is not ChildState.FAILED


async def test_backoff_grows_exponentially_within_jitter(autojump_clock: trio.abc.Clock) -> None:
    name = unique("backoff")
    crasher = Recorder(always("crash"))
    policy = RestartPolicy(
        max_restarts=5, within_seconds=600.0, backoff_initial=1.0, backoff_max=100.0, jitter=0.5
    )
    supervisor = Supervisor("root", [ChildSpec(name, crasher, policy=policy)], rng=random.Random(7))

    async with running(supervisor):
        await wait_for_state(supervisor, name, ChildState.FAILED)

    delays = [later - earlier for earlier, later in itertools.pairwise(crasher.starts)]
    expected_rng = random.Random(7)
    assert len(delays) == 5
    for number, delay in enumerate(delays, start=1):
        ceiling = 2.0 ** (number - 1)
        assert ceiling * 0.5 <= delay <= ceiling
        assert delay == pytest.approx(policy.backoff(number, expected_rng))


def test_backoff_capped_at_max() -> None:
    policy = RestartPolicy(backoff_initial=1.0, backoff_max=30.0, jitter=0.2)
    rng = random.Random(3)

    delays = [policy.backoff(number, rng) for number in (10, 100, 5000)]

    assert all(24.0 <= delay <= 30.0 for delay in delays)


def test_backoff_without_jitter_exact() -> None:
    policy = RestartPolicy(backoff_initial=0.5, backoff_max=30.0, jitter=0.0)
    rng = random.Random(0)

    assert [policy.backoff(number, rng) for number in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 4.0]


def test_policy_from_config() -> None:
    cfg = SupervisorConfig(
        max_restarts=3, within_seconds=10.0, backoff_initial=1.0, backoff_max=8.0
    )

    policy = RestartPolicy.from_config(cfg, jitter=0.1)

    assert policy == RestartPolicy(
        max_restarts=3, within_seconds=10.0, backoff_initial=1.0, backoff_max=8.0, jitter=0.1
    )


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"max_restarts": -1}, "max_restarts"),
        ({"within_seconds": 0.0}, "within_seconds"),
        ({"backoff_initial": -1.0}, "backoff_initial"),
        ({"backoff_initial": 5.0, "backoff_max": 1.0}, "backoff_max"),
        ({"jitter": 1.5}, "jitter"),
    ],
)
def test_invalid_policy_rejected(overrides: dict[str, float], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        RestartPolicy(**overrides)  # type: ignore[arg-type]  # mixed int and float values


# --- stopping -------------------------------------------------------------------


async def test_ignored_stop_hard_cancelled_after_grace(autojump_clock: trio.abc.Clock) -> None:
    name = unique("stubborn")
    ended_at: list[float] = []

    async def stubborn(ctx: ChildContext) -> None:
        try:
            await trio.sleep_forever()
        finally:
            ended_at.append(trio.current_time())

    supervisor = Supervisor("root", [ChildSpec(name, stubborn, shutdown_grace=3.0)])
    async with trio.open_nursery() as nursery:
        await nursery.start(supervisor.run)
        requested_at = trio.current_time()
        await supervisor.stop()

    assert ended_at == [requested_at + 3.0]
    assert child_stats(supervisor, name).state is ChildState.STOPPED


async def test_cooperative_child_stops_early(autojump_clock: trio.abc.Clock) -> None:
    name = unique("cooperative")
    child = Recorder(always("run"))
    supervisor = Supervisor("root", [ChildSpec(name, child, shutdown_grace=3.0)])

    async with trio.open_nursery() as nursery:
        await nursery.start(supervisor.run)
        requested_at = trio.current_time()
        await supervisor.stop()
        stopped_at = trio.current_time()

    assert stopped_at == requested_at
    assert child_stats(supervisor, name).state is ChildState.STOPPED
    assert supervisor.state is ChildState.STOPPED


async def test_children_start_in_order_stop_reversed(autojump_clock: trio.abc.Clock) -> None:
    events: list[str] = []

    def make(label: str) -> Callable[[ChildContext], Awaitable[None]]:
        async def child(ctx: ChildContext) -> None:
            await trio.sleep(1)  # slow start: the next sibling must wait for started()
            events.append(f"ready {label}")
            ctx.started()
            await ctx.stop_requested.wait()
            events.append(f"stop {label}")

        return child

    specs = [ChildSpec(unique(label), make(label), signals_ready=True) for label in "abc"]
    supervisor = Supervisor("root", specs)

    async with running(supervisor):
        assert events == ["ready a", "ready b", "ready c"]

    assert events[3:] == ["stop c", "stop b", "stop a"]


async def test_signals_ready_child_starting_until_ready(autojump_clock: trio.abc.Clock) -> None:
    name = unique("slow-start")
    ready = trio.Event()

    async def slow_start(ctx: ChildContext) -> None:
        await ready.wait()
        ctx.started()
        await ctx.stop_requested.wait()

    supervisor = Supervisor("root", [ChildSpec(name, slow_start, signals_ready=True)])
    async with trio.open_nursery() as nursery:
        nursery.start_soon(supervisor.run)
        await trio.sleep(5)
        assert child_stats(supervisor, name).state is ChildState.STARTING

        ready.set()
        await wait_for_state(supervisor, name, ChildState.RUNNING)
        await supervisor.stop()


async def test_child_in_backoff_stops_at_once(autojump_clock: trio.abc.Clock) -> None:
    name = unique("waiting")
    crasher = Recorder(always("crash"))
    policy = RestartPolicy(backoff_initial=500.0, backoff_max=500.0, jitter=0.0)
    supervisor = Supervisor("root", [ChildSpec(name, crasher, policy=policy)])

    async with trio.open_nursery() as nursery:
        await nursery.start(supervisor.run)
        await wait_for_state(supervisor, name, ChildState.BACKOFF)
        requested_at = trio.current_time()
        await supervisor.stop()

        assert trio.current_time() == requested_at
        assert child_stats(supervisor, name).state is ChildState.STOPPED


async def test_cancelling_supervisor_stops_gracefully(autojump_clock: trio.abc.Clock) -> None:
    stopped: list[str] = []

    def make(label: str) -> Callable[[ChildContext], Awaitable[None]]:
        async def child(ctx: ChildContext) -> None:
            await ctx.stop_requested.wait()
            await trio.sleep(1)  # a flush that needs a checkpoint
            stopped.append(label)

        return child

    specs = [ChildSpec(unique(label), make(label)) for label in "ab"]
    supervisor = Supervisor("root", specs)

    with trio.move_on_after(10) as scope:
        await supervisor.run()

    assert scope.cancelled_caught
    assert stopped == ["b", "a"]
    assert supervisor.state is ChildState.STOPPED


async def test_stop_before_start_returns(autojump_clock: trio.abc.Clock) -> None:
    supervisor = Supervisor("idle", [])

    await supervisor.stop()

    assert supervisor.state is ChildState.STOPPED


# --- escalation -----------------------------------------------------------------


async def test_nested_escalation_restarts_subtree(autojump_clock: trio.abc.Clock) -> None:
    leaf_name, inner_name, sibling_name = unique("leaf"), unique("inner"), unique("sibling")
    leaf = Recorder(always("crash"))
    inner = Supervisor(
        "inner",
        [ChildSpec(leaf_name, leaf, policy=LENIENT_POLICY)],
        intensity=RestartPolicy(max_restarts=1, within_seconds=60.0),
    )
    parent_policy = RestartPolicy(max_restarts=2, within_seconds=60.0, backoff_initial=0.1)
    ticks = [0]
    root = Supervisor(
        "root",
        [
            ChildSpec(sibling_name, lambda ctx: ticker(ticks, ctx), policy=LENIENT_POLICY),
            ChildSpec(inner_name, inner.start, policy=parent_policy),
        ],
    )

    async with running(root):
        await wait_for_state(root, inner_name, ChildState.FAILED)
        inner_stats = child_stats(root, inner_name)

        # Each run of the subtree allows the leaf one restart: 3 runs, 2 starts each.
        assert len(leaf.starts) == 6
        assert inner_stats.restarts == 2
        assert inner_stats.last_error is not None
        assert inner_stats.last_error.startswith("SupervisorEscalation(")
        assert inner.state is ChildState.FAILED
        assert child_stats(inner, leaf_name).state is ChildState.FAILED
        assert child_stats(root, sibling_name).state is ChildState.RUNNING


async def test_escalation_raised_from_start(autojump_clock: trio.abc.Clock) -> None:
    crasher = Recorder(always("crash"))
    supervisor = Supervisor(
        "alone",
        [ChildSpec(unique("crasher"), crasher, policy=LENIENT_POLICY)],
        intensity=RestartPolicy(max_restarts=0),
    )

    with pytest.raises(SupervisorEscalation) as caught:
        await supervisor.run()

    assert isinstance(caught.value.__cause__, ChildCrash)


async def test_parent_grace_bounds_subtree_stop(autojump_clock: trio.abc.Clock) -> None:
    async def stubborn(ctx: ChildContext) -> None:
        await trio.sleep_forever()

    inner = Supervisor("inner", [ChildSpec(unique("stubborn"), stubborn, shutdown_grace=100.0)])
    root = Supervisor("root", [ChildSpec(unique("inner"), inner.start, shutdown_grace=2.0)])

    async with trio.open_nursery() as nursery:
        await nursery.start(root.run)
        requested_at = trio.current_time()
        await root.stop()

        assert trio.current_time() == requested_at + 2.0
        assert inner.state is ChildState.STOPPED


# --- observability --------------------------------------------------------------


async def test_statistics_show_restarts_and_error(autojump_clock: trio.abc.Clock) -> None:
    name = unique("observed")
    child = Recorder(lambda attempt: "crash" if attempt < 3 else "run")
    supervisor = Supervisor("root", [ChildSpec(name, child, policy=LENIENT_POLICY)])

    async with running(supervisor):
        await wait_until(lambda: len(child.starts) == 3)
        stats = child_stats(supervisor, name)

        assert stats.restarts == 2
        assert stats.last_error == "ChildCrash('attempt 2')"
        assert stats.restart_type is RestartType.PERMANENT
        assert stats.started_at == child.starts[-1]
        assert stats.last_exit_at == child.starts[1]
        assert supervisor.statistics().restarts == 2


async def test_metrics_show_failed_state(autojump_clock: trio.abc.Clock) -> None:
    name = unique("metered")
    policy = RestartPolicy(max_restarts=1, backoff_initial=0.1)
    supervisor = Supervisor("root", [ChildSpec(name, Recorder(always("crash")), policy=policy)])

    async with running(supervisor):
        await wait_for_state(supervisor, name, ChildState.FAILED)

        def gauge(state: str) -> float | None:
            return REGISTRY.get_sample_value("plaudit_actor_state", {"actor": name, "state": state})

        assert gauge("failed") == 1.0
        assert gauge("running") == 0.0
        assert gauge("backoff") == 0.0
        restarts = REGISTRY.get_sample_value("plaudit_actor_restarts_total", {"actor": name})
        assert restarts == 1.0


async def test_on_event_sees_transitions(autojump_clock: trio.abc.Clock) -> None:
    name = unique("watched")
    seen: list[tuple[str, ChildState, ChildState, str | None]] = []

    def hook(child: str, old: ChildState, new: ChildState, error: BaseException | None) -> None:
        seen.append((child, old, new, None if error is None else repr(error)))

    child = Recorder(lambda attempt: "crash" if attempt == 1 else "run")
    supervisor = Supervisor(
        "root", [ChildSpec(name, child, policy=LENIENT_POLICY)], rng=random.Random(1), on_event=hook
    )
    async with running(supervisor):
        await wait_until(lambda: len(child.starts) == 2)

    assert seen == [
        (name, ChildState.STOPPED, ChildState.STARTING, None),
        (name, ChildState.STARTING, ChildState.RUNNING, None),
        (name, ChildState.RUNNING, ChildState.BACKOFF, "ChildCrash('attempt 1')"),
        (name, ChildState.BACKOFF, ChildState.STARTING, None),
        (name, ChildState.STARTING, ChildState.RUNNING, None),
        (name, ChildState.RUNNING, ChildState.STOPPING, None),
        (name, ChildState.STOPPING, ChildState.STOPPED, None),
    ]


async def test_broken_hook_keeps_supervising(autojump_clock: trio.abc.Clock) -> None:
    name = unique("hooked")

    def broken(child: str, old: ChildState, new: ChildState, error: BaseException | None) -> None:
        raise ValueError("watcher bug")

    child = Recorder(always("run"))
    supervisor = Supervisor("root", [ChildSpec(name, child)], on_event=broken)
    async with running(supervisor):
        assert child_stats(supervisor, name).state is ChildState.RUNNING


def test_repr_one_line() -> None:
    supervisor = Supervisor("root", [ChildSpec(unique("a"), Recorder(always("run")))])

    text = repr(supervisor)

    assert "\n" not in text
    assert text == "<Supervisor 'root' stopped: 1 children, 0 running, 0 failed, 0 restarts>"


# --- operator calls and lifecycle errors -------------------------------------------


async def test_operator_restart_of_failed_child(autojump_clock: trio.abc.Clock) -> None:
    name = unique("repaired")
    broken = [True]
    child = Recorder(lambda attempt: "crash" if broken[0] else "run")
    policy = RestartPolicy(max_restarts=1, backoff_initial=0.1)
    supervisor = Supervisor("root", [ChildSpec(name, child, policy=policy)])

    async with running(supervisor):
        await wait_for_state(supervisor, name, ChildState.FAILED)
        broken[0] = False
        await supervisor.restart(name)

        assert child_stats(supervisor, name).state is ChildState.RUNNING
        assert len(child.starts) == 3


async def test_operator_restart_resets_budget(autojump_clock: trio.abc.Clock) -> None:
    name = unique("budget")
    child = Recorder(always("crash"))
    policy = RestartPolicy(max_restarts=1, within_seconds=3600.0, backoff_initial=0.1)
    supervisor = Supervisor("root", [ChildSpec(name, child, policy=policy)])

    async with running(supervisor):
        await wait_for_state(supervisor, name, ChildState.FAILED)
        await supervisor.restart(name)
        await wait_for_state(supervisor, name, ChildState.FAILED)

        # Two starts per budget: the first run and its single restart.
        assert len(child.starts) == 4


async def test_operator_restart_of_running_child(autojump_clock: trio.abc.Clock) -> None:
    name = unique("refreshed")
    child = Recorder(always("run"))
    supervisor = Supervisor("root", [ChildSpec(name, child)])

    async with running(supervisor):
        await supervisor.restart(name)

        assert len(child.starts) == 2
        assert child_stats(supervisor, name).state is ChildState.RUNNING


async def test_restart_unknown_child_rejected(autojump_clock: trio.abc.Clock) -> None:
    supervisor = Supervisor("root", [ChildSpec(unique("known"), Recorder(always("run")))])

    async with running(supervisor):
        with pytest.raises(SupervisorError, match="no child named 'ghost'"):
            await supervisor.restart("ghost")


async def test_restart_while_stopped_rejected(autojump_clock: trio.abc.Clock) -> None:
    name = unique("idle")
    supervisor = Supervisor("root", [ChildSpec(name, Recorder(always("run")))])

    with pytest.raises(SupervisorError, match="is stopped"):
        await supervisor.restart(name)


async def test_second_start_rejected(autojump_clock: trio.abc.Clock) -> None:
    supervisor = Supervisor("root", [ChildSpec(unique("a"), Recorder(always("run")))])

    async with running(supervisor):
        with pytest.raises(SupervisorError, match="already running"):
            await supervisor.start(ChildContext("again"))


def test_illegal_transition_raises() -> None:
    with pytest.raises(IllegalTransitionError, match="from stopped to running"):
        check_transition(ChildState.STOPPED, ChildState.RUNNING)


def test_failed_child_only_restarts() -> None:
    for target in (ChildState.RUNNING, ChildState.BACKOFF, ChildState.STOPPED):
        with pytest.raises(IllegalTransitionError):
            check_transition(ChildState.FAILED, target)


def test_duplicate_child_names_rejected() -> None:
    child = Recorder(always("run"))

    with pytest.raises(ValueError, match="duplicate child name 'twin'"):
        Supervisor("root", [ChildSpec("twin", child), ChildSpec("twin", child)])
