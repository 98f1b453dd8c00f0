"""Weft: the one door into the runner for the web layer.

Each method is one thing a route asks of weft; each raises the runner's own errors (the
WeftError hierarchy), which the web layer maps to one status each. Nothing here speaks HTTP.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any, NamedTuple, cast
from uuid import UUID

import anyio.abc

from blocks.registry import Block
from runner.artifacts.artifacts import Artifacts
from runner.engine.trial import TrialResult, try_node
from runner.errors import (
    DatabaseUnavailableError,
    NodeNotFoundError,
    WeftError,
)
from runner.facade_operations import Operations
from runner.graph.shape import Graph, NodePolicy
from runner.live.bus import GoingAwayError
from runner.live.streams import Item, LiveStreams
from runner.metrics import Metrics
from runner.models import (
    ALL_RUNS,
    ALL_WORKFLOWS,
    Durability,
    NodeStatus,
    RateLimit,
    Run,
    RunFilter,
    RunStatus,
    Workflow,
    WorkflowFilter,
)
from runner.records import Artifact, LogLine, NodeRun
from runner.runtime.mailboxes import RuntimeStatistics
from runner.runtime.runtime import Runtime
from runner.runtime.workflows import SIGNATURE_HEADER
from runner.secrets import Secrets
from runner.store.protocol import Store

# What web/ needs beside the facade: the webhook signature's header, the stream's item type
# and its end when the server goes away.
__all__ = [
    "SIGNATURE_HEADER", "Durability", "GoingAwayError", "Health", "Item", "Response", "Weft"
]  # fmt: skip


class Response(NamedTuple):
    """What a `respond` node set as the answer of a waiting trigger."""

    status: int
    headers: dict[str, str]
    body: Any


def respond_nodes(graph: dict[str, Any] | None) -> frozenset[str]:
    """The ids of a graph's `respond` nodes."""
    nodes = (graph or {}).get("nodes") or []
    return frozenset(n["id"] for n in nodes if isinstance(n, dict) and n.get("type") == "respond")


class Health(NamedTuple):
    """What /healthz reports: the database answered, and the runtime's figures."""

    statistics: RuntimeStatistics


class Weft(Operations):
    """Workflows, runs, webhooks, artifacts and live streams, as the API offers them."""

    def __init__(
        self, runtime: Runtime, store: Store, artifacts: Artifacts, secrets: Secrets | None = None
    ) -> None:
        self._runtime = runtime
        self._store = store
        self._artifacts = artifacts
        self._secrets = secrets
        self._live = LiveStreams(store, runtime.services.events)

    # -- serving ---------------------------------------------------------------------------

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Run the runtime until cancelled (see Runtime.run)."""
        await self._runtime.run(task_status=task_status)

    async def shutdown(self, grace_s: float) -> None:
        """Stop taking runs and let in-flight nodes finish for up to `grace_s`."""
        await self._runtime.shutdown(grace_s)

    async def health(self) -> Health:
        """The runtime's figures, once the database has answered."""
        try:
            answered = await self._store.ping()
        except WeftError:
            raise
        except Exception as exc:  # whatever the database says, it is not ready
            raise DatabaseUnavailableError(f"the database does not answer: {exc}") from exc
        if not answered:
            raise DatabaseUnavailableError()
        return Health(self._runtime.statistics())

    @property
    def metrics(self) -> Metrics | None:
        """This process's metrics (the web layer reports its responses there)."""
        return self._runtime.services.metrics

    async def render_metrics(self) -> bytes:
        """This process's metrics in Prometheus's text format (runner.metrics.CONTENT_TYPE)."""
        metrics = self._runtime.services.metrics
        return b"" if metrics is None else await metrics.render()

    def blocks(self) -> list[Block]:
        """The registered block types (the editor's palette)."""
        return list(self._runtime.registry)

    def node_policy_schema(self) -> dict[str, Any]:
        """The JSON Schema of the params every node accepts beside its block's own."""
        schema: dict[str, Any] = NodePolicy.model_json_schema()
        return schema

    # -- workflows -------------------------------------------------------------------------

    def validate_graph(self, graph: Graph) -> list[str]:
        """The graph's execution order; InvalidGraphError lists every problem."""
        return list(self._runtime.workflows.validate_graph(graph, saving=True).order)

    async def create_workflow(
        self,
        *,
        name: str,
        graph: Graph,
        webhook_slug: str | None,
        webhook_secret: str | None,
        max_concurrency: int | None = None,
        durability: Durability = Durability.SYNC,
        description: str = "",
        tags: tuple[str, ...] = (),
        rate_limit: RateLimit | None = None,
    ) -> Workflow:
        await self._check_references(graph)
        return await self._runtime.workflows.create(
            name=name,
            graph=graph,
            webhook_slug=webhook_slug,
            webhook_secret=webhook_secret,
            max_concurrency=max_concurrency,
            durability=durability,
            description=description,
            tags=tags,
            rate_limit=rate_limit,
        )

    async def duplicate_workflow(self, workflow_id: UUID, *, name: str | None) -> Workflow:
        """A copy of the workflow with a new webhook slug, without its secret or runs."""
        return await self._runtime.workflows.duplicate(workflow_id, name=name)

    async def list_workflows(
        self, *, limit: int, offset: int, filters: WorkflowFilter = ALL_WORKFLOWS
    ) -> tuple[list[Workflow], int]:
        """A page of the workflows `filters` keeps, and how many it keeps in all."""
        return await self._store.list_workflows(limit=limit, offset=offset, filters=filters)

    async def get_workflow(self, workflow_id: UUID) -> Workflow:
        return await self._store.get_workflow(workflow_id)

    async def update_workflow(
        self,
        workflow_id: UUID,
        *,
        name: str,
        graph: Graph,
        webhook_slug: str | None,
        webhook_secret: str | None,
        keep_secret: bool,
        max_concurrency: int | None = None,
        durability: Durability = Durability.SYNC,
        description: str | None = None,
        tags: tuple[str, ...] | None = None,
        rate_limit: RateLimit | None = None,
    ) -> Workflow:
        """Overwrite a workflow; an omitted slug, description or tags (None) and
        `keep_secret` keep what it had (a rate_limit of None clears it)."""
        await self._check_references(graph, workflow_id)
        return await self._runtime.workflows.update(
            workflow_id,
            name=name,
            graph=graph,
            webhook_slug=webhook_slug,
            webhook_secret=webhook_secret,
            keep_secret=keep_secret,
            max_concurrency=max_concurrency,
            durability=durability,
            description=description,
            tags=tags,
            rate_limit=rate_limit,
        )

    async def delete_workflow(self, workflow_id: UUID) -> None:
        await self._runtime.workflows.delete(workflow_id)

    # -- runs ------------------------------------------------------------------------------

    async def start_run(
        self, workflow_id: UUID, *, payload: Any, idempotency_key: str | None = None
    ) -> tuple[Run, bool]:
        """Start a manual run; (the run, True), or (the earlier run, False) for a repeated
        idempotency key."""
        return await self._runtime.runs.start(
            workflow_id, trigger_type="manual", payload=payload, idempotency_key=idempotency_key
        )

    async def start_runs(self, workflow_id: UUID, *, payloads: list[Any]) -> list[Run]:
        return await self._runtime.runs.start_many(
            workflow_id, trigger_type="manual", payloads=payloads
        )

    async def fire_hook(
        self,
        slug: str,
        *,
        body: bytes,
        signature: str | None,
        payload: Callable[[], Awaitable[Any]],
        idempotency_key: str | None = None,
    ) -> tuple[Run, bool]:
        """Start a run from a webhook call, its signature checked against the raw body
        before `payload()` (the body's JSON, read by the caller) is asked for."""
        return await self._runtime.runs.fire_hook(
            slug,
            body=body,
            signature=signature,
            payload=payload,
            idempotency_key=idempotency_key,
        )

    async def wait_run_finished(self, run_id: UUID, *, unfinished: bool = False) -> Run:
        """Wait until the run has finished; `unfinished` skips the first read."""
        return await self._runtime.runs.wait_finished(run_id, unfinished=unfinished)

    async def wait_answer(self, run: Run, *, unfinished: bool = False) -> Run | Response:
        """What a waiting trigger answers: the output of the run's first `respond` node to
        succeed, as soon as it has (the run goes on), else the run once it has finished."""
        responders = respond_nodes(run.graph)
        if not responders:
            return await self.wait_run_finished(run.id, unfinished=unfinished)
        # Its live messages: a snapshot, then events, whichever process executes it.
        stream = cast(AsyncGenerator[Item, None], self._live.run_messages(run.id))
        async with contextlib.aclosing(stream) as messages:
            async for item in messages:
                data = {} if item is None else item.to_json()
                done = []
                if data.get("type") == "snapshot":
                    done = [n for n in data["nodes"] if n["node_id"] in responders]
                    done = [n for n in done if n["status"] == NodeStatus.SUCCEEDED]
                    done.sort(key=lambda n: n["finished_at"] or "")
                elif data.get("type") == "node.succeeded" and data["node_id"] in responders:
                    done = [data]
                if done:
                    return await self._response_of(run.id, done[0]["node_id"])
                if data.get("type") == "run.finished" or (
                    data.get("type") == "snapshot" and RunStatus(data["run"]["status"]).finished
                ):
                    return await self._store.get_run(run.id)
        return await self._store.get_run(run.id)

    async def _response_of(self, run_id: UUID, node_id: str) -> Response:
        (node,) = [n for n in await self._store.list_node_runs(run_id) if n.node_id == node_id]
        output = node.output if isinstance(node.output, dict) else {}
        if isinstance(output.get("items"), list):  # under for_each: its first item's answer
            output = next((i for i in output["items"] if isinstance(i, dict)), {})
        return Response(
            int(output.get("status", 200)), dict(output.get("headers") or {}), output.get("body")
        )

    async def cancel_run(self, run_id: UUID) -> Run:
        """Cancel a run, and the runs its workflow.run nodes started."""
        run = await self._runtime.runs.cancel(run_id)
        await self._runtime.runs.cancel_children(run_id)
        return run

    async def delete_run(self, run_id: UUID) -> None:
        """Delete a finished run with its node runs, items, logs, events and artifact
        records (not the artifacts' files); RunNotFinishedError while it has not ended."""
        await self._store.delete_run(run_id)

    async def rerun(self, run_id: UUID, *, from_node: str | None) -> Run:
        """A new run on the graph a finished run executed, from `from_node` (else from its
        failed and cancelled nodes); the other nodes' outputs are copied."""
        return await self._runtime.runs.rerun(run_id, from_node)

    async def try_node(
        self,
        workflow_id: UUID,
        node_id: str,
        *,
        upstream: dict[str, Any],
        trigger: Any,
        nodes: dict[str, Any],
    ) -> TrialResult:
        """Run one node of the workflow's current graph on its own, without a run."""
        workflow = await self._store.get_workflow(workflow_id)
        plan = self._runtime.workflows.validate_graph(Graph.model_validate(workflow.graph))
        node = plan.nodes.get(node_id)
        if node is None:
            raise NodeNotFoundError(f"workflow {workflow_id} has no node {node_id!r}")
        return await try_node(
            node,
            self._runtime.services,
            workflow_id=workflow_id,
            upstream=upstream,
            trigger=trigger,
            nodes=nodes,
            artifacts=self._artifacts.without_rows(),
        )

    async def get_run(self, run_id: UUID) -> Run:
        return await self._store.get_run(run_id)

    async def list_runs(
        self,
        *,
        limit: int,
        before: UUID | None,
        workflow_id: UUID | None = None,
        filters: RunFilter = ALL_RUNS,
    ) -> list[Run]:
        """Runs newest first, those `filters` keeps; a workflow's only
        (WorkflowNotFoundError when it is unknown)."""
        if workflow_id is not None:
            await self._store.get_workflow(workflow_id)
        return await self._store.list_runs(
            limit=limit, before=before, workflow_id=workflow_id, filters=filters
        )

    async def list_node_runs(self, run_id: UUID) -> list[NodeRun]:
        return await self._store.list_node_runs(run_id)

    async def list_logs(
        self, run_id: UUID, *, after: int, limit: int, node_id: str | None = None
    ) -> list[LogLine]:
        return await self._store.list_logs(run_id, after=after, limit=limit, node_id=node_id)

    async def read_artifact(self, artifact_id: UUID) -> tuple[Artifact, bytes]:
        return await self._artifacts.read(artifact_id)

    # -- live ------------------------------------------------------------------------------

    def run_messages(
        self, run_id: UUID, after: int | None = None, *, heartbeat_s: float | None = None
    ) -> AsyncIterator[Item]:
        """A snapshot of the run, then its events (see LiveStreams.run_messages)."""
        return self._live.run_messages(run_id, after, heartbeat_s=heartbeat_s)

    def workflow_messages(
        self, workflow_id: UUID, after: int | None = None, *, heartbeat_s: float | None = None
    ) -> AsyncIterator[Item]:
        return self._live.workflow_messages(workflow_id, after, heartbeat_s=heartbeat_s)
