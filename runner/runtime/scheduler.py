"""The scheduler: starts the runs of due schedules, exactly once per slot, whichever and
however many processes run it.

Each process looks every TICK_S for schedules due by its clock. For each it starts a run
keyed by the slot (the runs' unique (workflow, idempotency key) index: a second process, or a
second look after a crash, finds the run the first one started), then moves the schedule's
next_fire_at on with a compare-and-set. A slot that passed while no process ran fires once
when one comes back: the latest slot missed, not one run per slot.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import anyio
import structlog

from runner.errors import ShuttingDownError, WeftError, WorkflowNotFoundError
from runner.runtime.runs import Runs
from runner.schedules import Schedule, latest_slot, next_fire
from runner.store.schedules import PostgresSchedules

log = structlog.get_logger(__name__)

TICK_S = 1.0
BATCH = 50


def utc_now() -> datetime:
    return datetime.now(UTC)


class Scheduler:
    """Fires due schedules (`keep`, in the runtime's task group). `clock` is injectable:
    tests drive time without waiting for it."""

    def __init__(
        self,
        schedules: PostgresSchedules,
        runs: Runs,
        *,
        clock: Callable[[], datetime] = utc_now,
        accepting: Callable[[], bool] = lambda: True,
    ) -> None:
        self.schedules = schedules
        self._runs = runs
        self.clock = clock
        self._accepting = accepting
        self._wakeup = anyio.Event()

    def wake(self) -> None:
        """Look now (a schedule was created or changed, or a test moved the clock)."""
        self._wakeup.set()

    async def keep(self) -> None:
        while True:
            with anyio.move_on_after(TICK_S):
                await self._wakeup.wait()
            self._wakeup = anyio.Event()
            if not self._accepting():
                continue
            try:
                await self.fire_due()
            except Exception as exc:  # the database is away, say: look again next tick
                log.warning("scheduler_look_failed", error=repr(exc))

    async def fire_due(self) -> int:
        """Start the runs of the schedules due now; how many this process started."""
        started = 0
        now = self.clock()
        for schedule in await self.schedules.due(now, BATCH):
            try:
                started += await self._fire(schedule, now)
            except WeftError as exc:  # this one cannot fire now: the others still do
                log.warning("schedule_fire_failed", schedule_id=str(schedule.id), error=repr(exc))
        return started

    async def _fire(self, schedule: Schedule, now: datetime) -> int:
        assert schedule.next_fire_at is not None  # due ones have one
        slot = latest_slot(schedule.cron, schedule.timezone, now)
        payload: Any = schedule.payload
        fired_at = slot.astimezone(UTC).isoformat()
        body = {**payload, "fired_at": fired_at} if isinstance(payload, dict) else payload
        try:
            _, created = await self._runs.start(
                schedule.workflow_id,
                trigger_type="schedule",
                payload=body,
                idempotency_key=f"weft-schedule:{schedule.id}:{fired_at}",
            )
        except ShuttingDownError:
            return 0  # not moved on: the next process to look fires it
        except WorkflowNotFoundError:
            return 0  # deleted meanwhile, and its schedules with it
        await self.schedules.advance(
            schedule.id,
            found=schedule.next_fire_at,
            next_fire_at=next_fire(schedule.cron, schedule.timezone, now),
            fired_for=slot,
        )
        if created:
            log.info("schedule_fired", schedule_id=str(schedule.id), slot=fired_at)
        return int(created)
