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

    __slots__ = ("done", "local", "run")

    def __init__(self, local: bool) -> None:
        self.done = anyio.Event()
        self.run: Run | None = None
        self.local = local  # the run executes here: its end is told here


class RunWaiters:
    """`wait_run_finished` and `wait_idle`, woken by `run_finished`."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._waiters: dict[UUID, _Waiter] = {}
        self._remote = 0  # waiters for runs that may end in another process
        self._any_ended = anyio.Event()

    def _waiter(self, run_id: UUID, *, local: bool = False) -> _Waiter:
        waiter = self._waiters.get(run_id)
        if waiter is None:
            waiter = self._waiters[run_id] = _Waiter(local)
            self._remote += not local
        return waiter

    def expect(self, run_id: UUID, *, local: bool = False) -> None:
        """Register interest in a run's end before it can end (it is woken even when nobody
        waits yet), so that `wait_run_finished(unfinished=True)` needs no database read.
        `local`: the run executes in this process (no other process need tell of it)."""
        self._waiter(run_id, local=local)

    async def wait_run_finished(self, run_id: UUID, *, unfinished: bool = False) -> Run:
        """Wait until the run has finished (in this process); returns how it ended.

        `unfinished`: the caller knows the run had not finished when it was `expect`ed, so
        while that registration stands the database read is skipped.
        """
        waiter = self._waiters.get(run_id) if unfinished else None
        while True:
            if waiter is None:
                waiter = self._waiter(run_id)
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
            self._remote -= not waiter.local
            waiter.run = run
            waiter.done.set()
        self._any_ended.set()

    def any_remote(self) -> bool:
        """Whether a caller waits for a run that may end in another process."""
        return self._remote > 0

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
