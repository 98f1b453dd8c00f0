"""The Store in memory: the same behaviour as PostgreSQL's, for fast tests of the engine
(supervisors, executors, the runtime) with no database. Its RunWriter is
runner/store/memory_writer.py."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from runner.errors import (
    ArtifactNotFoundError,
    HookChangedError,
    RunNotFinishedError,
    RunNotFoundError,
    WorkflowNotFoundError,
)
from runner.live.events import Event
from runner.models import (
    ALL_RUNS,
    NO_LINEAGE,
    Hook,
    Lineage,
    NodeStatus,
    Run,
    RunFilter,
    RunStatus,
    Workflow,
)
from runner.records import Artifact, ItemResult, LogLine, NodeRun
from runner.store.memory_events import MemoryEventLog
from runner.store.memory_nodes import MemoryNodes
from runner.store.memory_workflows import MemoryWorkflows, as_stored, now


@dataclass
class _Lease:
    owner: UUID | None
    expires: datetime | None


class MemoryStore(MemoryWorkflows, MemoryNodes, MemoryEventLog):
    """Workflows, runs, node runs, logs and artifacts in dicts (the Store protocol)."""

    def __init__(self) -> None:
        self.workflows: dict[UUID, Workflow] = {}
        self.runs: dict[UUID, Run] = {}
        self.nodes: dict[UUID, dict[str, NodeRun]] = {}
        self.logs: list[tuple[UUID, LogLine]] = []  # with the run each line belongs to
        self.events: dict[UUID, list[dict[str, Any]]] = {}  # each run's event log
        self.items: dict[tuple[UUID, str], dict[int, ItemResult]] = {}
        self.cancels_requested: set[UUID] = set()
        self.artifacts: dict[UUID, Artifact] = {}
        self.leases: dict[UUID, _Lease] = {}
        self._keys: dict[tuple[UUID, str], UUID] = {}

    # -- runs ------------------------------------------------------------------------------

    async def delete_run(self, run_id: UUID) -> None:
        run = await self.get_run(run_id)
        if not run.status.finished:
            raise RunNotFinishedError(f"run {run_id} is {run.status}: cancel it first")
        self._forget_runs({run_id})

    async def prune_runs(self, *, cutoff: datetime, limit: int) -> int:
        old = sorted(
            (r for r in self.runs.values() if r.finished_at and r.finished_at < cutoff),
            key=lambda r: r.finished_at or cutoff,
        )[:limit]
        gone = {run.id for run in old}
        self._forget_runs(gone)
        return len(gone)

    def _forget_runs(self, gone: set[UUID]) -> None:
        for run_id in gone:
            del self.runs[run_id]
            self.nodes.pop(run_id, None)
            self.events.pop(run_id, None)
            self.leases.pop(run_id, None)
        self.logs = [(run_id, line) for run_id, line in self.logs if run_id not in gone]
        self.items = {k: v for k, v in self.items.items() if k[0] not in gone}
        self.artifacts = {k: a for k, a in self.artifacts.items() if a.run_id not in gone}
        self._keys = {k: run_id for k, run_id in self._keys.items() if run_id not in gone}

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
        workflow = self.workflows.get(workflow_id)
        if hook is not None and (
            workflow is None
            or workflow.webhook_slug != hook.slug
            or workflow.webhook_secret != hook.secret
        ):
            raise HookChangedError(f"webhook {hook.slug!r} changed")
        if workflow is None:
            raise WorkflowNotFoundError(f"no workflow {workflow_id}")
        if idempotency_key is not None:
            earlier = self._keys.get((workflow_id, idempotency_key))
            if earlier is not None:
                return await self.get_run(earlier), False
            self._keys[(workflow_id, idempotency_key)] = run_id
        owner = lease_owner if take else None
        if graph is not None:  # a re-run runs the graph its original ran
            workflow = dataclasses.replace(workflow, graph=graph)
        run = self._new_run(run_id, workflow, trigger_type, trigger_payload, owner, lease_s)
        self.runs[run_id] = dataclasses.replace(self.runs[run_id], lineage=lineage)
        return dataclasses.replace(run, lineage=lineage), True

    def _new_run(
        self,
        run_id: UUID,
        workflow: Workflow,
        trigger_type: str,
        payload: Any,
        owner: UUID | None,
        lease_s: float,
    ) -> Run:
        if workflow.max_concurrency is not None:
            owner = None  # claimed within the limit (claim_pending_runs)
        created_at = now()
        run = Run(
            run_id, workflow.id, RunStatus.PENDING, trigger_type, as_stored(payload),
            as_stored(workflow.graph), None, None, created_at, None, None,
            durability=workflow.durability,
        )  # fmt: skip
        self.runs[run_id] = run
        self.nodes[run_id] = {
            n["id"]: NodeRun(
                n["id"], n["type"], NodeStatus.PENDING, 0, None, None, None, None, None
            )
            for n in workflow.graph.get("nodes", [])
        }
        expires = None if owner is None else created_at + timedelta(seconds=lease_s)
        self.leases[run_id] = _Lease(owner, expires)
        return dataclasses.replace(self._counted(run), lease_owner=owner)

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
        workflow = await self.get_workflow(workflow_id)
        take = len(run_ids) if take is None else take
        owners = [lease_owner if i < take else None for i in range(len(run_ids))]
        return [
            self._new_run(run_id, workflow, trigger_type, payload, owner, lease_s)
            for run_id, payload, owner in zip(run_ids, trigger_payloads, owners, strict=True)
        ]

    def _counted(self, run: Run) -> Run:
        nodes = self.nodes.get(run.id, {}).values()
        done = sum(1 for n in nodes if n.status not in (NodeStatus.PENDING, NodeStatus.RUNNING))
        return dataclasses.replace(run, nodes_total=len(nodes), nodes_done=done)

    async def find_run_by_key(self, workflow_id: UUID, idempotency_key: str) -> Run | None:
        earlier = self._keys.get((workflow_id, idempotency_key))
        return None if earlier is None else await self.get_run(earlier)

    async def get_run(self, run_id: UUID) -> Run:
        try:
            return self._counted(self.runs[run_id])
        except KeyError:
            raise RunNotFoundError(f"no run {run_id}") from None

    async def list_runs(
        self,
        *,
        limit: int,
        before: UUID | None,
        workflow_id: UUID | None = None,
        filters: RunFilter = ALL_RUNS,
    ) -> list[Run]:
        runs = [
            r
            for r in self.runs.values()
            if workflow_id in (None, r.workflow_id) and filters.matches(r)
        ]
        runs.sort(key=lambda r: (r.created_at, r.id), reverse=True)
        if before is not None:  # an unknown cursor run ends the list, as in SQL
            cursor = self.runs.get(before)
            runs = [
                r
                for r in runs
                if cursor is not None and (r.created_at, r.id) < (cursor.created_at, cursor.id)
            ]
        return runs[:limit]

    async def claim_orphaned_runs(
        self, owner: UUID, lease_s: float, limit: int, *, include_own: bool = False
    ) -> list[Run]:
        at = now()
        claimed = []
        for run in sorted(self.runs.values(), key=lambda r: (r.created_at, r.id)):
            lease = self.leases[run.id]
            lapsed = (lease.expires is not None and lease.expires < at) or (
                lease.owner is None and run.status is RunStatus.RUNNING
            )
            if run.status.finished or not (lapsed or (include_own and lease.owner == owner)):
                continue
            self.leases[run.id] = _Lease(owner, at + timedelta(seconds=lease_s))
            claimed.append(run)
            if len(claimed) == limit:
                break
        return claimed

    async def claim_pending_runs(self, owner: UUID, lease_s: float, limit: int) -> list[Run]:
        busy = Counter(
            r.workflow_id
            for r in self.runs.values()
            if not r.status.finished and self.leases[r.id].owner is not None
        )
        claimed: list[Run] = []
        for run in sorted(self.runs.values(), key=lambda r: (r.created_at, r.id)):
            waiting = run.status is RunStatus.PENDING and self.leases[run.id].owner is None
            cap = self.workflows[run.workflow_id].max_concurrency if waiting else None
            if len(claimed) == limit or not waiting or (cap and busy[run.workflow_id] >= cap):
                continue
            self.leases[run.id] = _Lease(owner, now() + timedelta(seconds=lease_s))
            busy[run.workflow_id] += 1
            claimed.append(dataclasses.replace(run, lease_owner=owner))
        return claimed

    async def renew_leases(self, owner: UUID, lease_s: float) -> list[tuple[UUID, UUID]]:
        asked = []
        for run_id, lease in self.leases.items():
            if lease.owner == owner and not self.runs[run_id].status.finished:
                lease.expires = now() + timedelta(seconds=lease_s)
                if run_id in self.cancels_requested:
                    asked.append((run_id, self.runs[run_id].workflow_id))
        return asked

    async def release_leases(self, owner: UUID) -> None:
        for run_id, lease in self.leases.items():
            if lease.owner == owner and not self.runs[run_id].status.finished:
                lease.owner = lease.expires = None

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
        run = self.runs.get(run_id)
        if run is None or run.status.finished:
            return None
        lease = self.leases[run_id]
        if lease.owner not in (None, owner) and lease.expires and lease.expires >= now():
            return None
        unfinished = [
            n.node_id
            for n in self.nodes[run_id].values()
            if n.status in (NodeStatus.PENDING, NodeStatus.RUNNING)
        ]
        made = events(await self.last_event_seq(run_id) + 1, unfinished)
        self.runs[run_id] = dataclasses.replace(
            run,
            status=RunStatus.CANCELLED,
            finished_at=finished_at,
            event_seq=made[-1].seq,
            error=as_stored(error),
        )
        for node_id in unfinished:
            self.set_node(run_id, node_id, status=NodeStatus.CANCELLED, finished_at=finished_at)
        self.events.setdefault(run_id, []).extend(e.to_json() for e in made)
        return made

    async def request_cancel(self, run_id: UUID, workflow_id: UUID) -> None:
        self.cancels_requested.add(run_id)

    async def list_unfinished_children(self, run_id: UUID) -> list[UUID]:
        return [
            r.id
            for r in self.runs.values()
            if r.lineage.parent_run_id == run_id and not r.status.finished
        ]

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
        artifact = Artifact(artifact_id, run_id, node_id, uri, size, content_type, now())
        self.artifacts[artifact_id] = artifact
        return artifact

    async def get_artifact(self, artifact_id: UUID) -> Artifact:
        try:
            return self.artifacts[artifact_id]
        except KeyError:
            raise ArtifactNotFoundError(f"no artifact {artifact_id}") from None

    async def ping(self) -> bool:
        return True
