"""The facade's operator side (runner/facade.py): schedules and secrets."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from blocks.subworkflow import WORKFLOW_RUN
from blocks.templating import is_template
from runner import schedules
from runner.errors import (
    InvalidGraphError,
    InvalidRequestError,
    Problem,
    SecretKeyMissingError,
    WeftError,
    WorkflowNotFoundError,
)
from runner.graph.references import read_nodes
from runner.graph.shape import Graph
from runner.runtime.runtime import Runtime
from runner.runtime.scheduler import Scheduler
from runner.secrets import SecretInfo, Secrets
from runner.store.protocol import Store


class Operations:
    """Schedules and secrets, for Weft (`_runtime`, `_store`, `_secrets`)."""

    _runtime: Runtime
    _store: Store
    _secrets: Secrets | None

    # -- secrets ---------------------------------------------------------------------------

    def _secret_store(self) -> Secrets:
        if self._secrets is None:
            raise SecretKeyMissingError()
        return self._secrets

    async def create_secret(self, name: str, value: str) -> SecretInfo:
        return await self._secret_store().create(name, value)

    async def update_secret(self, name: str, value: str) -> SecretInfo:
        return await self._secret_store().update(name, value)

    async def delete_secret(self, name: str) -> None:
        await self._secret_store().delete(name)

    async def list_secrets(self) -> list[SecretInfo]:
        return await self._secret_store().list()

    async def _check_references(self, graph: Graph, workflow_id: UUID | None = None) -> None:
        """What a graph being saved (as `workflow_id`, when it exists) names that must exist
        now: its secrets and the workflows its workflow.run nodes start. Refused with every
        such problem at once; what is deleted later fails its node at run time."""
        problems = await self._secret_problems(graph) + await self._child_problems(
            graph, workflow_id
        )
        if problems:
            raise InvalidGraphError(problems)

    async def _child_problems(self, graph: Graph, workflow_id: UUID | None) -> list[Problem]:
        """workflow.run nodes naming (not computing) a workflow that does not exist."""
        targets: dict[UUID, list[str]] = {}  # each workflow named, and the nodes naming it
        for node in graph.nodes:
            target = node.params.get("workflow_id") if node.type == WORKFLOW_RUN else None
            if not isinstance(target, str) or is_template(target):
                continue
            try:
                target_id = UUID(target)
            except ValueError:  # not a UUID: the block's params say so
                continue
            if target_id != workflow_id:  # itself (its depth is bounded at run time)
                targets.setdefault(target_id, []).append(node.id)
        problems: list[Problem] = []
        for target_id, node_ids in targets.items():
            try:
                await self._store.get_workflow(target_id)
            except WorkflowNotFoundError:
                problems.extend(
                    Problem(
                        "unknown_workflow",
                        f"node {node_id!r}: params.workflow_id: there is no workflow {target_id}",
                        node_id=node_id,
                        field="params.workflow_id",
                    )
                    for node_id in node_ids
                )
        return problems

    async def _secret_problems(self, graph: Graph) -> list[Problem]:
        """`secrets.NAME` of a secret that does not exist (where the template names it: a
        computed name fails its node at run time), or passed to a child run."""
        problems = []
        known: set[str] | None = None
        for node in graph.nodes:
            block = self._runtime.registry.get(node.type)
            if block is None or "secrets" not in str(node.params):
                continue
            named, _ = read_nodes(node.params, block.raw_params, "secrets")
            if named and known is None:
                known = await self._secrets.names() if self._secrets is not None else set()
            for path, name in named:
                if node.type == WORKFLOW_RUN and path.startswith("input"):
                    problems.append(
                        Problem(
                            "secret_in_child_input",
                            f"node {node.id!r}: params.{path}: secrets.{name}: a child run's "
                            "input is stored with it in clear; let the child workflow read "
                            f"secrets.{name} itself",
                            node_id=node.id,
                            field=f"params.{path}",
                        )
                    )
                elif known is not None and name not in known:
                    problems.append(
                        Problem(
                            "unknown_secret",
                            f"node {node.id!r}: params.{path}: secrets.{name}: no secret "
                            f"{name!r} (POST /secrets defines it)",
                            node_id=node.id,
                            field=f"params.{path}",
                        )
                    )
        return problems

    # -- schedules -------------------------------------------------------------------------

    def _scheduler(self) -> Scheduler:
        if self._runtime.scheduler is None:
            raise WeftError("schedules need PostgreSQL")
        return self._runtime.scheduler

    def _next_fire(self, cron: str, timezone: str, enabled: bool) -> datetime | None:
        """The schedule's first slot from now; ScheduleError becomes a 422 naming the field."""
        try:
            schedules.check(cron, timezone)
        except schedules.ScheduleError as exc:
            raise InvalidRequestError(str(exc), exc.field) from None
        if not enabled:
            return None
        return schedules.next_fire(cron, timezone, self._scheduler().clock())

    async def create_schedule(
        self, workflow_id: UUID, *, cron: str, timezone: str, payload: Any, enabled: bool
    ) -> schedules.Schedule:
        """A new schedule of the workflow, with its next fire time."""
        next_fire_at = self._next_fire(cron, timezone, enabled)
        created = await self._scheduler().schedules.create(
            schedule_id=uuid4(),
            workflow_id=workflow_id,
            cron=cron,
            timezone=timezone,
            payload=payload,
            enabled=enabled,
            next_fire_at=next_fire_at,
        )
        self._scheduler().wake()
        return created

    async def list_schedules(self, workflow_id: UUID) -> list[schedules.Schedule]:
        await self._store.get_workflow(workflow_id)  # 404 for an unknown workflow
        return await self._scheduler().schedules.of_workflow(workflow_id)

    async def get_schedule(self, schedule_id: UUID) -> schedules.Schedule:
        return await self._scheduler().schedules.get(schedule_id)

    async def update_schedule(
        self, schedule_id: UUID, *, cron: str, timezone: str, payload: Any, enabled: bool
    ) -> schedules.Schedule:
        """Overwrite a schedule; its next fire time counts from now."""
        next_fire_at = self._next_fire(cron, timezone, enabled)
        updated = await self._scheduler().schedules.update(
            schedule_id,
            cron=cron,
            timezone=timezone,
            payload=payload,
            enabled=enabled,
            next_fire_at=next_fire_at,
        )
        self._scheduler().wake()
        return updated

    async def delete_schedule(self, schedule_id: UUID) -> None:
        await self._scheduler().schedules.delete(schedule_id)
