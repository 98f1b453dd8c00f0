"""The workflows of the MemoryStore (runner/store/memory.py), kept and searched as
PostgreSQL's queries would."""

from __future__ import annotations

import dataclasses
import math
import time
from datetime import UTC, datetime
from fractions import Fraction
from typing import Any
from uuid import UUID

import orjson

from runner.errors import SlugTakenError, WorkflowBusyError, WorkflowNotFoundError
from runner.models import (
    ALL_WORKFLOWS,
    Durability,
    Hook,
    RateLimit,
    Run,
    Workflow,
    WorkflowFilter,
)
from runner.records import NodeRun
from runner.store.db import RawJson


def now() -> datetime:
    return datetime.now(UTC)


def as_stored(value: Any) -> Any:
    """A value as a jsonb column gives it back (RawJson decoded, everything copied)."""
    if isinstance(value, RawJson):
        return orjson.loads(value.encode())
    return None if value is None else orjson.loads(orjson.dumps(value))


class MemoryWorkflows:
    """Workflows (`workflows`); deleting one deletes its runs (`runs`, `nodes`, `leases`)."""

    workflows: dict[UUID, Workflow]
    runs: dict[UUID, Run]
    nodes: dict[UUID, dict[str, NodeRun]]
    leases: dict[UUID, Any]

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
    ) -> Workflow:
        self._check_slug(workflow_id, webhook_slug)
        at = now()
        workflow = Workflow(
            workflow_id,
            name,
            webhook_slug,
            webhook_secret,
            as_stored(graph),
            at,
            at,
            max_concurrency,
            durability,
            description,
            tuple(tags),
            rate_limit,
        )
        self.workflows[workflow_id] = workflow
        return workflow

    def _check_slug(self, workflow_id: UUID, slug: str) -> None:
        if any(w.webhook_slug == slug and w.id != workflow_id for w in self.workflows.values()):
            raise SlugTakenError(f"webhook_slug {slug!r} is already in use")

    async def get_workflow(self, workflow_id: UUID) -> Workflow:
        try:
            return self.workflows[workflow_id]
        except KeyError:
            raise WorkflowNotFoundError(f"no workflow {workflow_id}") from None

    async def find_hook(self, slug: str) -> Hook | None:
        for workflow in self.workflows.values():
            if workflow.webhook_slug == slug:
                return Hook(slug, workflow.id, workflow.webhook_secret, workflow.rate_limit)
        return None

    async def list_workflows(
        self, *, limit: int, offset: int, filters: WorkflowFilter = ALL_WORKFLOWS
    ) -> tuple[list[Workflow], int]:
        kept = [w for w in self.workflows.values() if filters.matches(w)]
        kept.sort(key=lambda w: (w.updated_at, w.id), reverse=True)
        return kept[offset : offset + limit], len(kept)

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
    ) -> Workflow:
        current = await self.get_workflow(workflow_id)
        slug = webhook_slug or current.webhook_slug
        self._check_slug(workflow_id, slug)
        workflow = dataclasses.replace(
            current,
            name=name,
            webhook_slug=slug,
            webhook_secret=current.webhook_secret if keep_secret else webhook_secret,
            graph=as_stored(graph),
            max_concurrency=max_concurrency,
            durability=durability,
            description=current.description if description is None else description,
            tags=current.tags if tags is None else tuple(tags),
            rate_limit=rate_limit,
            updated_at=now(),
        )
        self.workflows[workflow_id] = workflow
        return workflow

    async def delete_workflow(self, workflow_id: UUID) -> None:
        await self.get_workflow(workflow_id)
        if any(r.workflow_id == workflow_id and not r.status.finished for r in self.runs.values()):
            raise WorkflowBusyError()
        del self.workflows[workflow_id]
        for run_id in [r.id for r in self.runs.values() if r.workflow_id == workflow_id]:
            del self.runs[run_id]
            self.nodes.pop(run_id, None)
            self.leases.pop(run_id, None)

    # -- rate limits (as sql/queries/rate_limits.sql, in exact fractions of a second) --------

    async def get_rate_limit(self, workflow_id: UUID) -> RateLimit | None:
        return (await self.get_workflow(workflow_id)).rate_limit

    async def take_rate_limit(self, workflow_id: UUID, cells: int) -> float | None:
        limit = self.workflows[workflow_id].rate_limit if workflow_id in self.workflows else None
        if limit is None:
            return None
        # Beside the store's own dicts: MemoryStore.__init__ knows nothing of rate limits.
        tats: dict[UUID, Fraction] = self.__dict__.setdefault("rate_tats", {})
        clock = Fraction(time.monotonic_ns(), 1_000_000_000)
        window = Fraction(limit.per_s)
        after = max(min(tats.get(workflow_id, clock), clock + window), clock)
        after += cells * window / limit.requests
        if after - clock <= window:
            tats[workflow_id] = after
            return None
        if cells > limit.requests:
            return math.inf
        return float(after - window - clock)
