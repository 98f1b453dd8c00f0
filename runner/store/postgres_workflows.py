"""The workflows part of the PostgresStore (runner/store/postgres.py): create, read, list
and search, overwrite, delete; and their rate limits."""

from __future__ import annotations

import math
from typing import Any
from uuid import UUID

import asyncpg

from runner.errors import SlugTakenError, WorkflowBusyError, WorkflowNotFoundError
from runner.models import (
    ALL_WORKFLOWS,
    Durability,
    Hook,
    RateLimit,
    Row,
    Workflow,
    WorkflowFilter,
)
from runner.store import notices
from runner.store.db import Database


class PostgresWorkflows:
    """Workflows and their webhooks, for the PostgresStore (`db`, `_payloads`)."""

    db: Database

    def _payloads(self, *items: notices.Notice) -> list[str]:
        raise NotImplementedError

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
        row = await self._write_workflow(
            webhook_slug,
            "insert_workflow",
            workflow_id,
            name,
            webhook_slug,
            webhook_secret,
            graph,
            max_concurrency,
            str(durability),
            description,
            list(tags),
            *_limit_args(rate_limit),
        )
        assert row is not None
        return Workflow.from_row(row)

    async def get_workflow(self, workflow_id: UUID) -> Workflow:
        row = await self.db.fetch_one("get_workflow", workflow_id)
        if row is None:
            raise WorkflowNotFoundError(f"no workflow {workflow_id}")
        return Workflow.from_row(row)

    async def find_hook(self, slug: str) -> Hook | None:
        """The webhook with this slug: its workflow's id and secret (not the whole graph)."""
        row = await self.db.fetch_one("get_hook", slug)
        if row is None:
            return None
        return Hook(slug, row["id"], row["webhook_secret"], RateLimit.from_row(row))

    async def list_workflows(
        self, *, limit: int, offset: int, filters: WorkflowFilter = ALL_WORKFLOWS
    ) -> tuple[list[Workflow], int]:
        """A page of the workflows `filters` keeps, and how many it keeps in all."""
        rows = await self.db.fetch_all("list_workflows", limit, offset, filters.q, filters.tag)
        total = await self.db.fetch_val("count_workflows", filters.q, filters.tag)
        return [Workflow.from_row(r) for r in rows], int(total)

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
        """Overwrite a workflow; a `webhook_slug`, `description` or `tags` of None keeps
        what it has, and so does `keep_secret` the secret (a `rate_limit` of None clears
        it, as max_concurrency)."""
        row = await self._write_workflow(
            webhook_slug,
            "update_workflow",
            workflow_id,
            name,
            webhook_slug,
            webhook_secret,
            graph,
            max_concurrency,
            keep_secret,
            str(durability),
            description,
            None if tags is None else list(tags),
            *_limit_args(rate_limit),
        )
        if row is None:
            raise WorkflowNotFoundError(f"no workflow {workflow_id}")
        await self.db.execute("notify", self._payloads(notices.WorkflowChanged(workflow_id)))
        return Workflow.from_row(row)

    async def _write_workflow(self, slug: str | None, query: str, *args: Any) -> Row | None:
        try:
            return await self.db.fetch_one(query, *args)
        except asyncpg.UniqueViolationError as exc:  # the only unique column is the slug
            raise SlugTakenError(f"webhook_slug {slug!r} is already in use") from exc

    async def delete_workflow(self, workflow_id: UUID) -> None:
        deleted = await self.db.fetch_val("delete_idle_workflow", workflow_id)
        if deleted is None:
            await self.get_workflow(workflow_id)  # raises when it does not exist
            raise WorkflowBusyError()
        await self.db.execute("notify", self._payloads(notices.WorkflowChanged(workflow_id)))

    # -- rate limits -----------------------------------------------------------------------

    async def get_rate_limit(self, workflow_id: UUID) -> RateLimit | None:
        row = await self.db.fetch_one("get_rate_limit", workflow_id)
        if row is None:
            raise WorkflowNotFoundError(f"no workflow {workflow_id}")
        return RateLimit.from_row(row)

    async def take_rate_limit(self, workflow_id: UUID, cells: int) -> float | None:
        """Take `cells` of the workflow's rate limit, in one statement whichever processes
        ask at once: None when taken (or it has no limit), else the seconds until they
        would fit (math.inf: never, more than its `requests`)."""
        row = await self.db.fetch_one("take_rate_limit", workflow_id, cells)
        if row is None or row["taken"]:
            return None
        return math.inf if row["wait_s"] is None else float(row["wait_s"])


def _limit_args(limit: RateLimit | None) -> tuple[int | None, float | None]:
    return (None, None) if limit is None else (limit.requests, limit.per_s)
