"""The RunWriter over a MemoryStore: every write applies at once, as PostgreSQL's batch
statement would apply it; an awaited write yields to the event loop as a commit would."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime
from uuid import UUID

import anyio
import anyio.abc
import anyio.lowlevel

from runner.live.events import Event
from runner.models import NodeStatus, RunStatus
from runner.records import ItemResult, LogLine, LogRecord
from runner.store.memory import MemoryStore
from runner.store.memory_workflows import as_stored
from runner.store.protocol import ItemEnd, NodeEnd, NodeStart, RunEnd


class MemoryWriter:
    """Applies the runtime's writes to a MemoryStore (the RunWriter protocol)."""

    def __init__(
        self, store: MemoryStore, publish: Callable[[Event, UUID], None] | None = None
    ) -> None:
        self._store = store
        self._publish = publish
        self._events: list[tuple[Event, UUID]] = []
        self.commits = 0

    def event(self, event: Event, workflow_id: UUID) -> None:
        """Logged and published with the next commit (as the Writer does)."""
        self._events.append((event, workflow_id))

    def run_started(self, run_id: UUID, started_at: datetime) -> None:
        run = self._store.runs.get(run_id)
        if run is not None and run.status is RunStatus.PENDING:
            self._store.runs[run_id] = dataclasses.replace(
                run, status=RunStatus.RUNNING, started_at=started_at
            )

    def node_started(self, start: NodeStart) -> None:
        node = self._store.nodes.get(start.run_id, {}).get(start.node_id)
        if node is not None and node.status in (NodeStatus.PENDING, NodeStatus.RUNNING):
            self._store.set_node(
                start.run_id, start.node_id, status=NodeStatus.RUNNING,
                started_at=start.started_at, input=as_stored(start.input), attempt=start.attempt,
            )  # fmt: skip

    def node_ended_soon(self, end: NodeEnd) -> None:
        node = self._store.nodes.get(end.run_id, {}).get(end.node_id)
        if node is None:
            return
        self._store.set_node(
            end.run_id,
            end.node_id,
            status=NodeStatus(end.status),
            started_at=end.started_at or node.started_at,
            finished_at=end.finished_at,
            input=node.input if end.input is None else as_stored(end.input),
            output=as_stored(end.output),
            error=as_stored(end.error),
            attempt=node.attempt if end.attempt is None else end.attempt,
        )

    def item_ended(self, end: ItemEnd) -> None:
        items = self._store.items.setdefault((end.run_id, end.node_id), {})
        items.setdefault(end.idx, ItemResult(as_stored(end.output), as_stored(end.error)))

    def log(self, record: LogRecord) -> None:
        line = LogLine(
            len(self._store.logs) + 1, record.node_id, record.ts, record.level, record.message,
            record.data,
        )  # fmt: skip
        self._store.logs.append((record.run_id, line))

    def _apply_run_end(self, end: RunEnd) -> None:
        run = self._store.runs.get(end.run_id)
        if run is not None:
            self._store.runs[end.run_id] = dataclasses.replace(
                run,
                status=RunStatus(end.status),
                outputs=as_stored(end.outputs),
                error=as_stored(end.error),
                finished_at=end.finished_at,
                event_seq=end.event_seq,
                started_at=run.started_at or end.started_at,
            )

    async def node_ended(self, end: NodeEnd) -> None:
        self.node_ended_soon(end)
        await self._commit()

    async def run_ended(self, end: RunEnd) -> None:
        self._apply_run_end(end)
        await self._commit()

    async def flush(self) -> None:
        await self._commit()

    async def _commit(self) -> None:
        self.commits += 1
        events, self._events = self._events, []
        for event, workflow_id in events:
            assert event.run_id is not None
            self._store.events.setdefault(event.run_id, []).append(event.to_json())
            if self._publish is not None:
                self._publish(event, workflow_id)
        await anyio.lowlevel.checkpoint()

    async def serve(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        task_status.started()
        await anyio.sleep_forever()
