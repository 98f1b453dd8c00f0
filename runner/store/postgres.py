"""Typed reads and writes of workflows (their part: postgres_workflows.py), runs, node runs,
logs and artifacts."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
import orjson

from runner.errors import (
    ArtifactNotFoundError,
    HookChangedError,
    RunNotFinishedError,
    RunNotFoundError,
    WorkflowNotFoundError,
)
from runner.live.events import Event
from runner.models import ALL_RUNS, NO_LINEAGE, Hook, Lineage, Run, RunFilter
from runner.records import Artifact, ItemResult, LogLine, NodeRun, RunSnapshotRows
from runner.store import notices
from runner.store.db import Database
from runner.store.postgres_workflows import PostgresWorkflows
from runner.store.run_inserts import NewRun, RunInserts, insert_alone, run_columns


class PostgresStore(PostgresWorkflows):
    """The runner's persistence: every method is one named query (or a few).

    `origin` names this process in the wake-ups its writes send to the others; `inserts`,
    when given, inserts the runs that concurrent requests start in groups.
    """

    def __init__(
        self, db: Database, *, origin: str = "", inserts: RunInserts | None = None
    ) -> None:
        self.db = db
        self.origin = origin
        self._inserts = inserts  # new runs in groups

    def _payloads(self, *items: notices.Notice) -> list[str]:
        return notices.payloads(self.origin, items)

    # -- runs ------------------------------------------------------------------------------

    async def insert_run(
        self,
        *,
        run_id: UUID,
        workflow_id: UUID,
        trigger_type: str,
        trigger_payload: Any,
        lease_owner: UUID,
        lease_s: float,
        idempotency_key: str | None = None,
        hook: Hook | None = None,
        take: bool = True,
        lineage: Lineage = NO_LINEAGE,
        graph: dict[str, Any] | None = None,
    ) -> tuple[Run, bool]:
        """The new run and True; or, for an idempotency key used before, that run and False.

        The run is leased to `lease_owner` when it `take`s it and the workflow sets no
        max_concurrency; otherwise it waits, pending, for claim_pending_runs.

        With `hook` (a webhook call checked against a cached copy of it), the run is only
        stored while the workflow still has that webhook's slug and secret; otherwise
        HookChangedError.
        """
        new = NewRun(
            run_id,
            workflow_id,
            trigger_type,
            trigger_payload,
            idempotency_key,
            None if hook is None else hook.slug,
            None if hook is None else hook.secret,
            take,
            lineage.parent_run_id,
            lineage.depth,
            lease_owner,
            lease_s,
            lineage.rerun_of,
            lineage.rerun_nodes,
            graph,
        )
        try:
            if self._inserts is not None:
                row = await self._inserts.insert(new)
            else:
                row = await insert_alone(self.db, new)
        except asyncpg.ForeignKeyViolationError as exc:  # deleted while we inserted
            raise WorkflowNotFoundError(f"no workflow {workflow_id}") from exc
        if row is not None:
            return Run.from_row(row), True
        if hook is not None:
            # Changed, gone, or a repeated idempotency key: told apart on a fresh look.
            raise HookChangedError(f"webhook {hook.slug!r} changed")
        if idempotency_key is not None:
            row = await self.db.fetch_one(
                "get_run_by_idempotency_key", workflow_id, idempotency_key
            )
            if row is not None:
                return Run.from_row(row), False
        raise WorkflowNotFoundError(f"no workflow {workflow_id}")

    async def insert_runs(
        self,
        *,
        run_ids: list[UUID],
        workflow_id: UUID,
        trigger_type: str,
        trigger_payloads: list[Any],
        lease_owner: UUID,
        lease_s: float,
        take: int | None = None,
    ) -> list[Run]:
        """A batch of new runs, in the order of `run_ids` (one payload each); the first
        `take` (all when None) are leased to `lease_owner` as insert_run would."""
        room = len(run_ids) if take is None else take
        batch = [
            NewRun(
                id=run_id,
                workflow_id=workflow_id,
                trigger_type=trigger_type,
                payload=payload,
                idempotency_key=None,
                slug=None,
                secret=None,
                take=i < room,
                parent_run_id=None,
                depth=0,
                lease_owner=lease_owner,
                lease_s=lease_s,
            )
            for i, (run_id, payload) in enumerate(zip(run_ids, trigger_payloads, strict=True))
        ]
        try:
            rows = await self.db.fetch_all("insert_runs", *run_columns(batch))
        except asyncpg.ForeignKeyViolationError as exc:  # deleted while we inserted
            raise WorkflowNotFoundError(f"no workflow {workflow_id}") from exc
        if not rows:
            raise WorkflowNotFoundError(f"no workflow {workflow_id}")
        runs = {run.id: run for run in map(Run.from_row, rows)}
        return [runs[run_id] for run_id in run_ids]

    async def find_run_by_key(self, workflow_id: UUID, idempotency_key: str) -> Run | None:
        """The run the workflow started for an idempotency key, if any."""
        row = await self.db.fetch_one("get_run_by_idempotency_key", workflow_id, idempotency_key)
        return None if row is None else Run.from_row(row)

    async def get_run(self, run_id: UUID) -> Run:
        row = await self.db.fetch_one("get_run", run_id)
        if row is None:
            raise RunNotFoundError(f"no run {run_id}")
        return Run.from_row(row)

    async def list_runs(
        self,
        *,
        limit: int,
        before: UUID | None,
        workflow_id: UUID | None = None,
        filters: RunFilter = ALL_RUNS,
    ) -> list[Run]:
        """A page of run history, newest first: every run's or one workflow's, those
        `filters` keeps, after the run `before`."""
        wanted = (
            None if filters.statuses is None else [str(s) for s in filters.statuses],
            None if filters.trigger_types is None else list(filters.trigger_types),
            filters.since,
            filters.until,
            filters.parent_run_id,
        )
        if workflow_id is None:
            rows = await self.db.fetch_all("list_runs", limit, before, *wanted)
        else:
            rows = await self.db.fetch_all(
                "list_workflow_runs", workflow_id, limit, before, *wanted
            )
        return [Run.from_row(r) for r in rows]

    async def claim_orphaned_runs(
        self, owner: UUID, lease_s: float, limit: int, *, include_own: bool = False
    ) -> list[Run]:
        rows = await self.db.fetch_all("claim_orphaned_runs", owner, lease_s, limit, include_own)
        return sorted((Run.from_row(r) for r in rows), key=lambda r: (r.created_at, r.id))

    async def claim_pending_runs(self, owner: UUID, lease_s: float, limit: int) -> list[Run]:
        """Lease up to `limit` waiting runs, keeping every workflow's max_concurrency."""
        rows = await self.db.fetch_all("claim_pending_runs", owner, lease_s, limit)
        return sorted((Run.from_row(r) for r in rows), key=lambda r: (r.created_at, r.id))

    async def renew_leases(self, owner: UUID, lease_s: float) -> list[tuple[UUID, UUID]]:
        """Renew; the (run, workflow) of leased runs whose cancel was asked."""
        rows = await self.db.fetch_all("renew_leases", owner, lease_s)
        return [(r["id"], r["workflow_id"]) for r in rows]

    async def release_leases(self, owner: UUID) -> None:
        await self.db.execute("release_leases", owner)

    async def cancel_unheld_run(
        self,
        run_id: UUID,
        workflow_id: UUID,
        *,
        owner: UUID,
        finished_at: datetime,
        error: dict[str, Any],
        events: Callable[[int, list[str]], list[Event]],
    ) -> list[Event] | None:
        """Cancel an unfinished run that no live process but `owner` holds, logging the
        events `events(first seq, unfinished node ids)` makes (the last one its
        run.finished); those events, or None when it was finished or held elsewhere."""
        async with self.db.connection() as conn, conn.transaction():
            row = await conn.fetch_one("lock_unheld_run", run_id, owner)
            if row is None:
                return None
            made = events(row["seq"] + 1, list(row["unfinished"]))
            first, last = made[0].seq, made[-1].seq
            await conn.execute(
                "cancel_locked_run",
                run_id,
                finished_at,
                last,
                error,
                first,
                "[" + ",".join(e.text() for e in made) + "]",
                self._payloads(notices.EventsAppended(run_id, workflow_id, first, last, True)),
            )
            return made

    async def request_cancel(self, run_id: UUID, workflow_id: UUID) -> None:
        """Ask whichever process executes the run to cancel it."""
        payloads = self._payloads(notices.CancelRequested(run_id, workflow_id))
        await self.db.execute("request_cancel", run_id, payloads)

    async def list_unfinished_children(self, run_id: UUID) -> list[UUID]:
        """The pending or running runs that the run's workflow.run nodes started."""
        return [r["id"] for r in await self.db.fetch_all("list_unfinished_children", run_id)]

    # -- node runs -------------------------------------------------------------------------

    async def list_node_runs(self, run_id: UUID) -> list[NodeRun]:
        """The run's node runs in graph order; RunNotFoundError for an unknown run."""
        rows = await self.db.fetch_all("list_node_runs", run_id)
        if not rows:
            raise RunNotFoundError(f"no run {run_id}")
        return [NodeRun.from_row(r) for r in rows if r["node_id"] is not None]

    async def list_node_items(self, run_id: UUID, node_id: str) -> dict[int, ItemResult]:
        """The finished items of a for_each node, by index."""
        rows = await self.db.fetch_all("list_node_items", run_id, node_id)
        return {r["idx"]: ItemResult(r["output"], r["error"]) for r in rows}

    # -- the event log --------------------------------------------------------------------

    async def last_event_seq(self, run_id: UUID) -> int:
        return int(await self.db.fetch_val("last_event_seq", run_id))

    async def run_snapshot(self, run_id: UUID) -> RunSnapshotRows:
        """The run, its nodes and its last event's seq, read in one snapshot of the
        database: exactly the state its events up to that seq describe."""
        async with (
            self.db.connection() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            row = await conn.fetch_one("get_run", run_id)
            if row is None:
                raise RunNotFoundError(f"no run {run_id}")
            nodes = await conn.fetch_all("list_node_runs", run_id)
            seq = await conn.fetch_val("last_event_seq", run_id)
        return RunSnapshotRows(
            Run.from_row(row),
            [NodeRun.from_row(n) for n in nodes if n["node_id"] is not None],
            int(seq),
        )

    async def run_events(self, run_id: UUID, *, after: int) -> list[dict[str, Any]]:
        """The run's logged events after `after`, in seq order (as JSON objects)."""
        rows = await self.db.fetch_all("run_events_after", run_id, after)
        return [e for r in rows for e in orjson.loads(r["events"]) if e["seq"] > after]

    async def events_after(
        self, positions: dict[UUID, int]
    ) -> list[tuple[UUID, list[dict[str, Any]]]]:
        """For each run, its logged events after its position (runs without any left out)."""
        rows = await self.db.fetch_all("events_after", list(positions), list(positions.values()))
        found: dict[UUID, list[dict[str, Any]]] = {}
        for r in rows:
            after = positions[r["run_id"]]
            found.setdefault(r["run_id"], []).extend(
                e for e in orjson.loads(r["events"]) if e["seq"] > after
            )
        return list(found.items())

    async def prune_events(
        self, *, cutoff: datetime, limit: int, cursor: datetime
    ) -> datetime | None:
        """Forget the events of up to `limit` runs finished after `cursor` and before
        `cutoff`; the new cursor, None when there was nothing to prune."""
        value: datetime | None = await self.db.fetch_val("prune_run_events", cutoff, limit, cursor)
        return value

    async def prune_runs(self, *, cutoff: datetime, limit: int) -> int:
        """Delete up to `limit` runs finished before `cutoff`, oldest first, with all they
        left; how many went."""
        return int(await self.db.fetch_val("prune_runs", cutoff, limit))

    async def delete_run(self, run_id: UUID) -> None:
        """Delete a finished run with all it left; RunNotFinishedError while it runs."""
        row = await self.db.fetch_one("delete_finished_run", run_id)
        if row is None:
            raise RunNotFoundError(f"no run {run_id}")
        if not row["deleted"]:
            raise RunNotFinishedError(f"run {run_id} is {row['status']}: cancel it first")

    # -- logs ------------------------------------------------------------------------------

    async def list_logs(
        self, run_id: UUID, *, after: int, limit: int, node_id: str | None = None
    ) -> list[LogLine]:
        """A page of the run's log lines; RunNotFoundError for an unknown run."""
        rows = await self.db.fetch_all("list_logs", run_id, after, limit, node_id)
        if not rows:
            raise RunNotFoundError(f"no run {run_id}")
        return [LogLine.from_row(r) for r in rows if r["id"] is not None]

    # -- artifacts -------------------------------------------------------------------------

    async def insert_artifact(
        self,
        *,
        artifact_id: UUID,
        run_id: UUID,
        node_id: str,
        uri: str,
        size: int,
        content_type: str,
    ) -> Artifact:
        row = await self.db.fetch_one(
            "insert_artifact", artifact_id, run_id, node_id, uri, size, content_type
        )
        assert row is not None
        return Artifact.from_row(row)

    async def get_artifact(self, artifact_id: UUID) -> Artifact:
        row = await self.db.fetch_one("get_artifact", artifact_id)
        if row is None:
            raise ArtifactNotFoundError(f"no artifact {artifact_id}")
        return Artifact.from_row(row)

    async def ping(self) -> bool:
        return bool(await self.db.fetch_val("ping") == 1)
