"""The Writer: every write of running runs, batched into one statement per round trip.

A node's result is committed before its children start (callers await it), but the commit
is shared: whatever is queued when the writer wakes up — results of concurrent nodes of any
run, node starts, log lines, runs starting and finishing, and the live events that report
them — goes to PostgreSQL as ONE statement, so one round trip and one fsync serve them all
(group commit). Node starts and log lines are never awaited: they ride along with the next
batch, or go within EVENT_FLUSH_S when nothing else is written.

Events are appended to the run's durable log in the same statement as the state they
report; only once the statement has committed are they published to this process's
subscribers and the other processes woken (runner/store/notifier.py), so no client ever
sees what a crash would undo.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any
from uuid import UUID

import anyio
import structlog

from runner.live.events import Event
from runner.metrics import Metrics
from runner.records import LogRecord
from runner.store.batch import Batch, NodeEndColumns, Pending
from runner.store.db import TRANSIENT_ERRORS, Connection, Database
from runner.store.event_rows import appended, event_columns
from runner.store.notifier import Notifier
from runner.store.protocol import ItemEnd, NodeEnd, NodeStart, RunEnd

log = structlog.get_logger(__name__)

# Unawaited writes (node starts, log lines, the events that report them) go with the next
# commit, or once the writer has been quiet this long: the live latency of what is not on
# a run's critical path.
EVENT_FLUSH_S = 0.01


class WriterClosedError(RuntimeError):
    """The writer has stopped; the write was not made (the run is resumed later)."""


class Writer:
    """Batches and commits the runtime's writes; `serve` runs in the runtime's task group."""

    def __init__(
        self,
        db: Database,
        *,
        publish: Callable[[Event, UUID], None] | None = None,
        notifier: Notifier | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._db = db
        self._metrics = metrics  # batch sizes and commit times
        # Where committed events go: this process's bus, and wake-ups for the others.
        self._publish = publish
        self._notifier = notifier
        self._queued = anyio.Event()
        self._last_write = 0.0
        # The writer's own connection: runs never wait for a pooled one behind requests.
        self._conn: Connection | None = None
        self._batch = Batch()
        self._wakeup = anyio.Event()
        self._closed = False

    # -- queueing (synchronous: never blocks the caller) -----------------------------------

    def run_started(self, run_id: UUID, started_at: datetime) -> None:
        self._batch.run_starts[run_id] = started_at

    def node_started(self, start: NodeStart) -> None:
        self._batch.node_starts[(start.run_id, start.node_id)] = start

    def node_ended_soon(self, end: NodeEnd) -> None:
        """Queue a node's end without waiting for it (nothing depends on its commit yet)."""
        self._batch.node_ends[(end.run_id, end.node_id)] = end

    def item_ended(self, end: ItemEnd) -> None:
        """Queue a for_each item's result (with the next commit; nothing waits on it)."""
        self._batch.items.append(end)

    def log(self, record: LogRecord) -> None:
        self._batch.logs.append(record)

    def event(self, event: Event, workflow_id: UUID) -> None:
        """Append a run's event to its log with the next commit (published once committed)."""
        self._batch.events.append((event, workflow_id))
        if not self._queued.is_set():
            self._queued.set()

    # -- awaited writes ---------------------------------------------------------------------

    async def node_ended(self, end: NodeEnd) -> None:
        """Commit a node's new state; returns once it is in PostgreSQL."""
        pending = self._await()
        key = (end.run_id, end.node_id)
        self._batch.node_ends[key] = end
        self._batch.owners[("node", *key)] = pending
        await self._commit(pending)

    async def run_ended(self, end: RunEnd) -> None:
        """Commit a run's end, after everything queued before it (its logs included)."""
        pending = self._await()
        self._batch.run_ends[end.run_id] = end
        self._batch.owners[("run", end.run_id)] = pending
        await self._commit(pending)

    async def flush(self) -> None:
        """Return once everything queued so far is committed."""
        await self._commit(self._await())

    def _await(self) -> Pending:
        if self._closed:
            raise WriterClosedError()
        pending = Pending()
        self._batch.waiters.append(pending)
        return pending

    async def _commit(self, pending: Pending) -> None:
        self._wakeup.set()
        await pending.done.wait()
        if pending.error is not None:
            raise pending.error

    # -- the loop ---------------------------------------------------------------------------

    async def serve(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        task_status.started()
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._tick)
                while True:
                    await self._wakeup.wait()
                    self._last_write = anyio.current_time()
                    batch, self._batch = self._batch, Batch()
                    self._wakeup = anyio.Event()
                    with anyio.CancelScope(shield=True):
                        await self._write(batch)
        finally:
            self._closed = True
            if self._conn is not None:
                with anyio.CancelScope(shield=True):
                    await self._conn.close()
            # Whatever was queued is not written: the runs it belongs to are resumed.
            for pending in self._batch.waiters:
                pending.error = WriterClosedError()
                pending.done.set()

    async def _tick(self) -> None:
        """Unawaited writes never wake the writer at once (they would cost every node a
        commit of its own); they ride with the next commit, or go once the writer has been
        quiet for EVENT_FLUSH_S (a commit of their own then costs nobody a wait)."""
        while True:
            await self._queued.wait()
            # A deadline that each commit pushes back, not a condition to wait on.
            while (wait := self._last_write + EVENT_FLUSH_S - anyio.current_time()) > 0:  # noqa: ASYNC110
                await anyio.sleep(wait)
            self._queued = anyio.Event()
            if len(self._batch):
                self._wakeup.set()

    async def _write(self, batch: Batch) -> None:
        if rows := len(batch):
            began = time.perf_counter()
            try:
                await self._execute(batch)
            except Exception as exc:
                await self._write_apart(batch, exc)
                return
            if self._metrics is not None:
                self._metrics.committed(rows, time.perf_counter() - began)
            self._published(batch)
        for pending in batch.waiters:
            pending.done.set()

    def _published(self, batch: Batch) -> None:
        """Committed: tell this process's subscribers, and wake the other processes."""
        if self._publish is not None:
            for event, workflow_id in batch.events:
                self._publish(event, workflow_id)
        if self._notifier is not None and self._notifier.wanted:
            self._notifier.tell(appended(batch.events))

    async def _execute(self, batch: Batch) -> None:
        delay = 0.05
        while True:
            try:
                if self._conn is None or self._conn.is_closed():
                    self._conn = await self._db.dedicated()
                if batch.only_node_ends() and len(batch.node_ends) == 1:
                    # A chain's common case: a plain one-row UPDATE costs less than the join.
                    e = next(iter(batch.node_ends.values()))
                    row = [getattr(e, name) for name in NodeEndColumns._fields]
                    events = event_columns(batch.events)
                    await self._conn.execute("write_node_end", *row, *events)
                elif batch.only_node_ends():
                    columns = batch.columns()
                    await self._conn.execute("write_node_ends", *columns.node_ends, *columns.events)
                else:
                    columns = batch.columns()
                    await self._conn.execute("write_batch", *columns.arguments())
            except TRANSIENT_ERRORS as exc:
                if self._conn is not None:
                    with contextlib.suppress(Exception):
                        await self._conn.close()
                    self._conn = None
                # The database is away: wait it out (runs block on their commits meanwhile).
                log.warning("database_unavailable_retrying", error=repr(exc), delay_s=delay)
                await anyio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            return

    async def _write_apart(self, batch: Batch, exc: Exception) -> None:
        """A batch failed for a reason of its own: write each row alone, so that one bad
        row fails only the awaiter it belongs to."""
        log.warning("write_batch_failed_splitting", error=repr(exc), rows=len(batch))
        parts: list[tuple[tuple[Any, ...] | None, Batch]] = []
        parts += [(None, Batch(run_starts={k: v})) for k, v in batch.run_starts.items()]
        parts += [(None, Batch(node_starts={k: v})) for k, v in batch.node_starts.items()]
        parts += [(("node", *k), Batch(node_ends={k: v})) for k, v in batch.node_ends.items()]
        parts += [(None, Batch(logs=[r])) for r in batch.logs]
        parts += [(None, Batch(items=[i])) for i in batch.items]
        parts += [(("run", k), Batch(run_ends={k: v})) for k, v in batch.run_ends.items()]
        failed: set[UUID] = set()  # runs with a write that failed
        for owner_key, part in parts:
            try:
                await self._execute(part)
            except Exception as part_exc:
                log.error("write_failed", error=repr(part_exc))
                failed |= part.run_ids()
                owner = batch.owners.get(owner_key) if owner_key is not None else None
                if owner is not None and owner.error is None:
                    owner.error = part_exc
        # The events last, once the state they report is written; none of a run whose
        # state failed to be (they would tell of what was not committed).
        events = [(e, w) for e, w in batch.events if e.run_id not in failed]
        if events:
            try:
                await self._execute(Batch(events=events))
                self._published(Batch(events=events))
            except Exception as events_exc:
                log.error("write_failed", error=repr(events_exc))
        for pending in batch.waiters:
            pending.done.set()
