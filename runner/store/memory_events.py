"""The event log part of the MemoryStore (runner/store/memory.py): each run's events as
JSON objects, read back as PostgreSQL's run_events would give them."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from runner.models import Run
from runner.records import NodeRun, RunSnapshotRows


class MemoryEventLog:
    """Each run's logged events (`events`), for the MemoryStore."""

    events: dict[UUID, list[dict[str, Any]]]
    runs: dict[UUID, Run]

    async def get_run(self, run_id: UUID) -> Run:
        raise NotImplementedError

    async def list_node_runs(self, run_id: UUID) -> list[NodeRun]:
        raise NotImplementedError

    async def last_event_seq(self, run_id: UUID) -> int:
        events = self.events.get(run_id)
        return events[-1]["seq"] if events else 0

    async def run_snapshot(self, run_id: UUID) -> RunSnapshotRows:
        return RunSnapshotRows(
            await self.get_run(run_id),
            await self.list_node_runs(run_id),
            await self.last_event_seq(run_id),
        )

    async def run_events(self, run_id: UUID, *, after: int) -> list[dict[str, Any]]:
        return [e for e in self.events.get(run_id, []) if e["seq"] > after]

    async def events_after(
        self, positions: dict[UUID, int]
    ) -> list[tuple[UUID, list[dict[str, Any]]]]:
        found = [(r, await self.run_events(r, after=a)) for r, a in positions.items()]
        return [(r, events) for r, events in found if events]

    async def prune_events(
        self, *, cutoff: datetime, limit: int, cursor: datetime
    ) -> datetime | None:
        old = sorted(
            (r for r in self.runs.values() if r.finished_at and cursor < r.finished_at < cutoff),
            key=lambda r: r.finished_at or cutoff,
        )[:limit]
        for run in old:
            self.events.pop(run.id, None)
        return old[-1].finished_at if old else None
