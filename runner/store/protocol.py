"""What the runtime needs from persistence, as protocols: the Store (reads, and the writes
requests make) and the RunWriter (the writes of running runs, batched).

runner/store/postgres.py and runner/store/writer.py implement them on PostgreSQL;
runner/store/memory.py implements both in memory, for fast tests of the engine.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

import anyio.abc

from runner.live.events import Event
from runner.models import (
    ALL_RUNS,
    ALL_WORKFLOWS,
    NO_LINEAGE,
    Durability,
    Hook,
    Lineage,
    RateLimit,
    Run,
    RunFilter,
    Workflow,
    WorkflowFilter,
)
from runner.records import Artifact, ItemResult, LogLine, LogRecord, NodeRun, RunSnapshotRows
from runner.store.db import RawJson


@dataclass(frozen=True, slots=True)
class NodeStart:
    """A node's attempt began (its input, as JSON)."""

    run_id: UUID
    node_id: str
    started_at: datetime
    input: RawJson | None
    attempt: int


@dataclass(frozen=True, slots=True)
class NodeEnd:
    """A node's new state: its end (succeeded, failed, skipped, cancelled) or, after an
    interruption, pending again."""

    run_id: UUID
    node_id: str
    status: str
    started_at: datetime | None = None
    finished_at: datetime | None = None
    input: RawJson | None = None
    output: RawJson | None = None
    error: dict[str, Any] | None = None
    attempt: int | None = None


@dataclass(frozen=True, slots=True)
class ItemEnd:
    """One item of a for_each node finished: its output, or its error."""

    run_id: UUID
    node_id: str
    idx: int
    output: RawJson | None
    error: dict[str, Any] | None
    finished_at: datetime


@dataclass(frozen=True, slots=True)
class RunEnd:
    """A run's end, with the seq of the event that announces it."""

    run_id: UUID
    status: str
    outputs: dict[str, Any] | None
    error: dict[str, Any] | None
    finished_at: datetime
    event_seq: int
    started_at: datetime | None = None


class Store(Protocol):
    """Reads and request-time writes of workflows, runs, node runs, logs and artifacts."""

    async def create_workflow(
        self,
        *,
        workflow_id: UUID,
        name: str,
        webhook_slug: str,
        webhook_secret: str | None,
        graph: dict[str, Any],
        max_concurrency: int | None = None,
        durability: Durability = Durability.SYNC,
        description: str = "",
        tags: tuple[str, ...] = (),
        rate_limit: RateLimit | None = None,
    ) -> Workflow: ...

    async def get_workflow(self, workflow_id: UUID) -> Workflow: ...

    async def find_hook(self, slug: str) -> Hook | None: ...

    async def list_workflows(
        self, *, limit: int, offset: int, filters: WorkflowFilter = ALL_WORKFLOWS
    ) -> tuple[list[Workflow], int]: ...

    async def update_workflow(
        self,
        workflow_id: UUID,
        *,
        name: str,
        webhook_slug: str | None,
        webhook_secret: str | None,
        keep_secret: bool,
        graph: dict[str, Any],
        max_concurrency: int | None = None,
        durability: Durability = Durability.SYNC,
        description: str | None = None,
        tags: tuple[str, ...] | None = None,
        rate_limit: RateLimit | None = None,
    ) -> Workflow: ...

    async def delete_workflow(self, workflow_id: UUID) -> None: ...

    async def get_rate_limit(self, workflow_id: UUID) -> RateLimit | None: ...

    async def take_rate_limit(self, workflow_id: UUID, cells: int) -> float | None: ...

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
    ) -> tuple[Run, bool]: ...

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
    ) -> list[Run]: ...

    async def get_run(self, run_id: UUID) -> Run: ...

    async def find_run_by_key(self, workflow_id: UUID, idempotency_key: str) -> Run | None: ...

    async def list_runs(
        self,
        *,
        limit: int,
        before: UUID | None,
        workflow_id: UUID | None = None,
        filters: RunFilter = ALL_RUNS,
    ) -> list[Run]: ...

    async def claim_orphaned_runs(
        self, owner: UUID, lease_s: float, limit: int, *, include_own: bool = False
    ) -> list[Run]: ...

    async def claim_pending_runs(self, owner: UUID, lease_s: float, limit: int) -> list[Run]: ...

    async def renew_leases(self, owner: UUID, lease_s: float) -> list[tuple[UUID, UUID]]: ...

    async def release_leases(self, owner: UUID) -> None: ...

    async def cancel_unheld_run(
        self,
        run_id: UUID,
        workflow_id: UUID,
        *,
        owner: UUID,
        finished_at: datetime,
        error: dict[str, Any],
        events: Callable[[int, list[str]], list[Event]],
    ) -> list[Event] | None: ...

    async def request_cancel(self, run_id: UUID, workflow_id: UUID) -> None: ...

    async def list_unfinished_children(self, run_id: UUID) -> list[UUID]: ...

    async def prune_events(
        self, *, cutoff: datetime, limit: int, cursor: datetime
    ) -> datetime | None: ...

    async def prune_runs(self, *, cutoff: datetime, limit: int) -> int: ...

    async def delete_run(self, run_id: UUID) -> None: ...

    async def last_event_seq(self, run_id: UUID) -> int: ...

    async def run_snapshot(self, run_id: UUID) -> RunSnapshotRows: ...

    async def run_events(self, run_id: UUID, *, after: int) -> list[dict[str, Any]]: ...

    async def events_after(
        self, positions: dict[UUID, int]
    ) -> list[tuple[UUID, list[dict[str, Any]]]]: ...

    async def list_node_runs(self, run_id: UUID) -> list[NodeRun]: ...

    async def list_node_items(self, run_id: UUID, node_id: str) -> dict[int, ItemResult]: ...

    async def list_logs(
        self, run_id: UUID, *, after: int, limit: int, node_id: str | None = None
    ) -> list[LogLine]: ...

    async def insert_artifact(
        self,
        *,
        artifact_id: UUID,
        run_id: UUID,
        node_id: str,
        uri: str,
        size: int,
        content_type: str,
    ) -> Artifact: ...

    async def get_artifact(self, artifact_id: UUID) -> Artifact: ...

    async def ping(self) -> bool: ...


class RunWriter(Protocol):
    """The writes of running runs: queued ones ride along with the next commit; awaited ones
    return once committed (see runner/store/writer.py)."""

    def run_started(self, run_id: UUID, started_at: datetime) -> None: ...

    def node_started(self, start: NodeStart) -> None: ...

    def node_ended_soon(self, end: NodeEnd) -> None: ...

    def item_ended(self, end: ItemEnd) -> None: ...

    def log(self, record: LogRecord) -> None: ...

    def event(self, event: Event, workflow_id: UUID) -> None: ...

    async def node_ended(self, end: NodeEnd) -> None: ...

    async def run_ended(self, end: RunEnd) -> None: ...

    async def flush(self) -> None: ...

    async def serve(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None: ...
