"""Callers waiting for runs to end, woken by their supervisors in this process, or by the
relay when another process tells of the end."""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID

import anyio

from runner.models import Run
from runner.store.protocol import Store


class _Waiter:
    """Callers waiting for one run to end, and how it ended (when known in memory)."""

    __slots__ = ("done", "run")

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.run: Run | None = None


class RunWaiters:
    """`wait_run_finished` and `wait_idle`, woken by `run_finished`."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._waiters: dict[UUID, _Waiter] = {}
        self._any_ended = anyio.Event()

    def expect(self, run_id: UUID) -> None:
        """Register interest in a run's end before it can end (it is woken even when nobody
        waits yet), so that `wait_run_finished(unfinished=True)` needs no database read."""
        self._waiters.setdefault(run_id, _Waiter())

    async def wait_run_finished(self, run_id: UUID, *, unfinished: bool = False) -> Run:
        """Wait until the run has finished (in this process); returns how it ended.

        `unfinished`: the caller knows the run had not finished when it was `expect`ed, so
        while that registration stands the database read is skipped.
        """
        waiter = self._waiters.get(run_id) if unfinished else None
        while True:
            if waiter is None:
                waiter = self._waiters.setdefault(run_id, _Waiter())
                run = await self._store.get_run(run_id)
                if run.status.finished:
                    return run
            await waiter.done.wait()
            if waiter.run is not None and waiter.run.status.finished:
                return waiter.run
            waiter = None  # it ended without a final state here (paused): look again

    def run_finished(self, run_id: UUID, run: Run | None = None) -> None:
        """A run's task has ended (how, when known): wake its waiters."""
        waiter = self._waiters.pop(run_id, None)
        if waiter is not None:
            waiter.run = run
            waiter.done.set()
        self._any_ended.set()

    def waiting(self, run_id: UUID) -> bool:
        return run_id in self._waiters

    def wake_all(self) -> None:
        """Every waiter looks at the database again (wake-ups may have been lost)."""
        for run_id in list(self._waiters):
            self.run_finished(run_id)

    async def wait_idle(self, in_flight: Callable[[], int]) -> None:
        """Return once `in_flight()` is 0, re-checked whenever a run ends."""
        while in_flight():
            self._any_ended = anyio.Event()
            await self._any_ended.wait()
