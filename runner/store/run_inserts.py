"""Group inserts of new runs: the runs that concurrent requests start go to PostgreSQL as
one statement and one commit, as the Writer groups the runs' later writes.

A run's insert is a transaction of its own on a pooled connection: under load each costs
the database a commit (and a WAL flush) per request, more than everything the Writer commits
for that run. Here the runs asked for while a group is being inserted wait for the next
group, so a quiet process inserts at once and a busy one inserts many runs per commit.

A group that fails (a workflow deleted meanwhile, a deadlock, the database away) is not
retried as a group: each of its runs is inserted alone by its caller, which then sees the
error that belongs to it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple
from uuid import UUID

import anyio
import structlog

from runner.store.db import Database, RawJson, Record, encode_json

log = structlog.get_logger(__name__)

# Groups inserted at once, each on a pooled connection of its own: one whose statement waits
# on a lock (a workflow being deleted, a key another process is inserting) holds up only
# its own runs' starts, not every start in the process.
GROUPS_IN_FLIGHT = 3


class NewRun(NamedTuple):
    """One run to insert: insert_runs' columns, in its order."""

    id: UUID
    workflow_id: UUID
    trigger_type: str
    payload: Any
    idempotency_key: str | None
    slug: str | None  # a webhook call's: stored only while the workflow still has it
    secret: str | None
    take: bool  # leased to this process (it has room)
    parent_run_id: UUID | None
    depth: int
    lease_owner: UUID
    lease_s: float
    rerun_of: UUID | None = None  # a re-run's: the run it re-runs, the nodes that run again
    rerun_nodes: tuple[str, ...] | None = None
    graph: dict[str, Any] | None = None  # its own graph (None: the workflow's)


@dataclass
class _Queued:
    run: NewRun
    done: anyio.Event = field(default_factory=anyio.Event)
    row: Record | None = None
    alone: bool = False  # not inserted with a group: the caller inserts it alone


class RunInserts:
    """Inserts runs in groups while `serve` runs (in the runtime's task group); without it,
    each alone."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._queue: list[_Queued] = []
        self._wakeup = anyio.Event()
        self._slots = anyio.Semaphore(GROUPS_IN_FLIGHT)
        self._serving = False

    async def insert(self, run: NewRun) -> Record | None:
        """The stored run's row, or None when insert_runs stores no row for it."""
        if run.payload is not None:  # encoded once, here (run_columns keeps it as it is)
            run = run._replace(payload=RawJson(encode_json(run.payload)))
        # jsonb has no NUL character: a payload with one would fail its whole group, so it
        # goes alone, to meet its refusal by itself.
        if not self._serving or "\\u0000" in (run.payload or ""):
            return await insert_alone(self._db, run)
        queued = _Queued(run)
        self._queue.append(queued)
        self._wakeup.set()
        await queued.done.wait()
        if queued.alone:
            return await insert_alone(self._db, run)
        return queued.row

    async def serve(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        self._serving = True
        task_status.started()
        try:
            async with anyio.create_task_group() as tg:
                while True:
                    await self._wakeup.wait()
                    # The runs asked for while every slot is busy join the next group.
                    await self._slots.acquire()
                    self._wakeup = anyio.Event()
                    group, self._queue = self._queue, []
                    if group:
                        tg.start_soon(self._insert_in_slot, group)
                    else:
                        self._slots.release()
        finally:
            self._serving = False
            for queued in self._queue:
                queued.alone = True
                queued.done.set()
            self._queue = []

    async def _insert_in_slot(self, group: list[_Queued]) -> None:
        try:
            # A caller waits for its run: a group begun is finished, even at shutdown.
            with anyio.CancelScope(shield=True):
                await self._insert(group)
        finally:
            self._slots.release()

    async def _insert(self, group: list[_Queued]) -> None:
        try:
            async with self._db.connection() as conn:
                rows = await conn.fetch_all("insert_runs", *run_columns([q.run for q in group]))
            by_id = {row["id"]: row for row in rows}
            for queued in group:
                queued.row = by_id.get(queued.run.id)
        except Exception as exc:  # each caller meets its own error, alone
            log.info("run_group_insert_failed", error=repr(exc), runs=len(group))
            for queued in group:
                queued.alone = True
        finally:
            for queued in group:
                queued.done.set()


async def insert_alone(db: Database, run: NewRun) -> Record | None:
    """insert_runs for one run, on a pooled connection: its row, or None."""
    rows = await db.fetch_all("insert_runs", *run_columns([run]))
    return rows[0] if rows else None


def run_columns(runs: list[NewRun]) -> list[list[Any]]:
    """insert_runs' arguments: one array per NewRun field (what unnest joins back into
    rows), JSON encoded here (asyncpg would take a list for a sub-array); None stays NULL."""
    columns: list[list[Any]] = [list(c) for c in zip(*runs, strict=True)]
    for name in ("payload", "rerun_nodes", "graph"):
        at = NewRun._fields.index(name)
        columns[at] = [None if v is None else RawJson(encode_json(v)) for v in columns[at]]
    return columns
