"""The writes of a run in `exit` durability: held in memory, written at the run's end.

A run of a workflow with `durability: "exit"` writes nothing while it executes: its node
starts and ends, log lines and events are kept here and handed to the process's Writer
with the run's end, which commits them all at once. Nothing of it is persisted before, so
a crash re-runs it from its start, and a client sees its events once it has finished.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from uuid import UUID

import anyio
import anyio.abc

from runner.live.events import Event
from runner.records import LogRecord
from runner.store.protocol import ItemEnd, NodeEnd, NodeStart, RunEnd, RunWriter


class DeferredWriter:
    """A RunWriter for one run that writes everything with the run's end."""

    def __init__(self, writer: RunWriter) -> None:
        self._writer = writer
        self._held: list[Callable[[], None]] = []

    def run_started(self, run_id: UUID, started_at: datetime) -> None:
        self._held.append(lambda: self._writer.run_started(run_id, started_at))

    def node_started(self, start: NodeStart) -> None:
        self._held.append(lambda: self._writer.node_started(start))

    def node_ended_soon(self, end: NodeEnd) -> None:
        self._held.append(lambda: self._writer.node_ended_soon(end))

    def item_ended(self, end: ItemEnd) -> None:
        self._held.append(lambda: self._writer.item_ended(end))

    def log(self, record: LogRecord) -> None:
        self._held.append(lambda: self._writer.log(record))

    def event(self, event: Event, workflow_id: UUID) -> None:
        self._held.append(lambda: self._writer.event(event, workflow_id))

    async def node_ended(self, end: NodeEnd) -> None:
        """Held like the rest: children do not wait for a commit."""
        self.node_ended_soon(end)

    async def run_ended(self, end: RunEnd) -> None:
        """Everything held, then the run's end, in one commit."""
        held, self._held = self._held, []
        for write in held:
            write()
        await self._writer.run_ended(end)

    async def flush(self) -> None:
        """A shutdown pauses the run: nothing is written (it runs again from its start)."""
        self._held.clear()

    async def serve(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Nothing to serve: the process's Writer does the writing."""
        task_status.started()
