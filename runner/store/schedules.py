"""Schedules in PostgreSQL: what the API writes and reads, and what the scheduler claims."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from runner.errors import ScheduleNotFoundError, WorkflowNotFoundError
from runner.schedules import Schedule
from runner.store.db import Database


class PostgresSchedules:
    """The schedules table, through the named statements of sql/queries/schedules.sql."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(
        self,
        *,
        schedule_id: UUID,
        workflow_id: UUID,
        cron: str,
        timezone: str,
        payload: Any,
        enabled: bool,
        next_fire_at: datetime | None,
    ) -> Schedule:
        row = await self.db.fetch_one(
            "insert_schedule",
            schedule_id, workflow_id, cron, timezone, payload, enabled, next_fire_at,
        )  # fmt: skip
        if row is None:
            raise WorkflowNotFoundError(f"no workflow {workflow_id}")
        return Schedule.from_row(row)

    async def get(self, schedule_id: UUID) -> Schedule:
        row = await self.db.fetch_one("get_schedule", schedule_id)
        if row is None:
            raise ScheduleNotFoundError(f"no schedule {schedule_id}")
        return Schedule.from_row(row)

    async def of_workflow(self, workflow_id: UUID) -> list[Schedule]:
        return [
            Schedule.from_row(r) for r in await self.db.fetch_all("list_schedules", workflow_id)
        ]

    async def update(
        self,
        schedule_id: UUID,
        *,
        cron: str,
        timezone: str,
        payload: Any,
        enabled: bool,
        next_fire_at: datetime | None,
    ) -> Schedule:
        row = await self.db.fetch_one(
            "update_schedule", schedule_id, cron, timezone, payload, enabled, next_fire_at
        )
        if row is None:
            raise ScheduleNotFoundError(f"no schedule {schedule_id}")
        return Schedule.from_row(row)

    async def delete(self, schedule_id: UUID) -> None:
        if await self.db.fetch_one("delete_schedule", schedule_id) is None:
            raise ScheduleNotFoundError(f"no schedule {schedule_id}")

    async def due(self, now: datetime, limit: int) -> list[Schedule]:
        """Enabled schedules due at `now`, earliest first."""
        return [Schedule.from_row(r) for r in await self.db.fetch_all("due_schedules", now, limit)]

    async def advance(
        self, schedule_id: UUID, *, found: datetime, next_fire_at: datetime, fired_for: datetime
    ) -> bool:
        """Move a schedule past the slot it fired for; False when another process did."""
        row = await self.db.fetch_one(
            "advance_schedule", schedule_id, found, next_fire_at, fired_for
        )
        return row is not None
