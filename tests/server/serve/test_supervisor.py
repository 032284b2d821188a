"""The supervisor (server/supervisor.py): a failed service is logged once with its traceback,
counted, and restarted after a backoff of 1 s doubling to 30 s; cancellation and KeyboardInterrupt
are never swallowed. On MockClock: the backoff is read off the clock."""

from __future__ import annotations

import itertools
import logging

import pytest
import trio
import trio.testing

from server.supervisor import FIRST_BACKOFF, HEALTHY_AFTER, MAX_BACKOFF, Supervisor


class Flaky:
    """A service that raises on its first `fails` starts, then runs until cancelled."""

    def __init__(self, fails: int) -> None:
        self.fails = fails
        self.starts: list[float] = []
        self.running = trio.Event()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self.starts.append(trio.current_time())
        task_status.started()
        if len(self.starts) <= self.fails:
            raise RuntimeError(f"bug number {len(self.starts)}")
        self.running.set()
        await trio.sleep_forever()


def failures(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage() == "service_failed"]


async def test_a_failing_service_restarts_with_a_doubling_backoff_and_each_failure_is_one_logged_traceback(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    supervisor, service = Supervisor(), Flaky(fails=8)
    start = trio.current_time()
    await nursery.start(supervisor.supervise, "webhooks", service.run)
    await service.running.wait()
    gaps = [round(b - a, 6) for a, b in zip(service.starts, service.starts[1:], strict=False)]
    assert gaps == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    assert service.starts[0] == start
    assert supervisor.failures["webhooks"] == 8
    logged = failures(caplog)
    assert len(logged) == 8
    assert all(r.levelno == logging.ERROR and r.exc_info is not None for r in logged)
    assert str(logged[0].exc_info[1]) == "bug number 1"  # type: ignore[index]
    assert [r.fields["restart_in"] for r in logged] == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]  # type: ignore[attr-defined]
    assert FIRST_BACKOFF == 1.0 and MAX_BACKOFF == 30.0


async def test_a_service_that_ran_long_starts_its_backoff_over(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    starts: list[float] = []

    async def run(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        starts.append(trio.current_time())
        task_status.started()
        if len(starts) in (1, 2):
            raise RuntimeError("early")
        if len(starts) == 3:
            await trio.sleep(HEALTHY_AFTER)  # healthy for a while, then a new failure
            raise RuntimeError("much later")
        await trio.sleep_forever()

    await nursery.start(Supervisor().supervise, "rollouts", run)
    await trio.sleep(HEALTHY_AFTER + 10)
    assert [round(b - a, 6) for a, b in itertools.pairwise(starts)] == [1.0, 2.0, HEALTHY_AFTER + 1.0]


async def test_a_service_that_returns_is_restarted_too(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    runs = 0

    async def run(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        nonlocal runs
        runs += 1
        task_status.started()

    supervisor = Supervisor()
    await nursery.start(supervisor.supervise, "odd", run)
    await trio.sleep(3.5)
    assert runs == 3 and supervisor.failures["odd"] == 3  # at 0, 1 and 3 s


async def test_a_service_that_fails_before_it_started_does_not_hold_up_the_server(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def broken(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        raise RuntimeError("never starts")

    supervisor = Supervisor()
    async with trio.open_nursery() as nursery:
        await nursery.start(supervisor.supervise, "broken", broken)  # returns though the service never started
        assert supervisor.failures["broken"] == 1
        nursery.cancel_scope.cancel()


async def test_cancellation_stops_a_supervised_service_and_is_not_swallowed(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    service = Flaky(fails=0)
    supervisor = Supervisor()
    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:
            await nursery.start(supervisor.supervise, "webhooks", service.run)
            await service.running.wait()
            scope.cancel()
    assert scope.cancelled_caught  # the Cancelled reached its scope: the supervisor did not restart
    assert len(service.starts) == 1 and supervisor.failures["webhooks"] == 0 and not failures(caplog)


async def test_keyboard_interrupt_goes_through(autojump_clock: trio.testing.MockClock) -> None:
    async def interrupted(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        raise KeyboardInterrupt

    supervisor = Supervisor()
    with pytest.RaisesGroup(KeyboardInterrupt, flatten_subgroups=True):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(supervisor.supervise, "webhooks", interrupted)
    assert supervisor.failures["webhooks"] == 0
