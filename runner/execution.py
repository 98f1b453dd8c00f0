"""One run, executed: each node starts the moment its parents have finished.

The executor is the only task that changes the run's state; node tasks run a block, commit
its result and report back over a stream.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import anyio
import httpx
import orjson
import structlog
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectSendStream

from blocks.context import ArtifactStore, BlockSettings, RunContext
from blocks.templating import render_value
from runner.events import EventBus, bounded
from runner.graph import ExecutionPlan, PlanNode
from runner.live import run_finished_data
from runner.models import Run, RunStatus, human_duration
from runner.node_log import LogBuffer, NodeLog
from runner.scheduler import NodeStatus, RunState
from runner.store import Store

log = structlog.get_logger(__name__)

# Final writes after a cancellation still get this long, shielded.
FINAL_WRITE_GRACE_S = 5.0
# Logs of a long run show up while it runs, yet cost one write per interval at most.
LOG_FLUSH_INTERVAL_S = 0.5


@dataclass(frozen=True, slots=True)
class RunServices:
    """What runs need from the process: persistence, shared clients, settings."""

    store: Store
    events: EventBus
    http: httpx.AsyncClient
    artifacts: ArtifactStore
    block_settings: BlockSettings


@dataclass(frozen=True, slots=True)
class NodeOutcome:
    """A node task's report to its run."""

    node_id: str
    status: NodeStatus
    output: Any = None
    error: dict[str, Any] | None = None


class BlockOutputError(TypeError):
    """The block returned something that is not a JSON object."""


def now() -> datetime:
    return datetime.now(UTC)


def error_info(exc: BaseException) -> dict[str, Any]:
    """An exception as stored on a node or run: its type and message."""
    message = str(exc) or (type(exc).__doc__ or "").strip().split("\n")[0]
    return {"type": type(exc).__name__, "message": message}


def _ms(start: datetime, end: datetime) -> int:
    return max(0, round((end - start).total_seconds() * 1000))


def _as_json_object(output: Any) -> dict[str, Any]:
    if not isinstance(output, dict):
        raise BlockOutputError(f"a block must return a dict, not {type(output).__name__}")
    try:
        # Round-trip so what children see is exactly what was stored.
        decoded = orjson.loads(orjson.dumps(output, option=orjson.OPT_NON_STR_KEYS))
    except TypeError as exc:
        raise BlockOutputError(f"the block's output is not JSON: {exc}") from None
    assert isinstance(decoded, dict)
    return decoded


class RunExecutor:
    """Executes one run on its plan."""

    def __init__(self, services: RunServices, run: Run, plan: ExecutionPlan) -> None:
        self.services = services
        self.run = run
        self.plan = plan
        self.state = RunState(plan)
        self.logs = LogBuffer(services.store, services.events, run.id, run.workflow_id)
        self._run_log = NodeLog(self.logs, None)
        self._scopes: dict[str, anyio.CancelScope] = {}
        self._first_error: dict[str, Any] | None = None

    @property
    def run_id(self) -> UUID:
        return self.run.id

    async def execute(self) -> RunStatus:
        """Run every node to its end; returns the run's final status."""
        store = self.services.store
        started_at = now()
        await store.start_run(
            self.run_id, started_at, [(n, self.plan.nodes[n].type) for n in self.plan.order]
        )
        self._publish("run.started", status="running", started_at=started_at.isoformat())
        self._run_log.info("run started", trigger=self.run.trigger_type)
        # Every node reports exactly once, so a buffer of one slot per node never blocks.
        send, receive = anyio.create_memory_object_stream[NodeOutcome](max(1, len(self.plan.nodes)))
        async with send, receive, anyio.create_task_group() as tg:
            tg.start_soon(self._flush_logs_periodically)
            step = self.state.start()
            await self._skip(step.skipped)
            self._launch(tg, step.ready, send)
            while not self.state.finished:
                outcome = await receive.receive()
                await self._on_outcome(tg, outcome, send)
            # Only the log flusher is left: every node task has reported.
            tg.cancel_scope.cancel()
        return await self._finish(started_at)

    def _publish(self, type: str, **data: Any) -> None:
        self.services.events.publish(self.run_id, self.run.workflow_id, type, data)

    def _publish_progress(self) -> None:
        total = len(self.state.status)
        done = total * self.state.progress // 100 if total else 0
        self._publish("run.progress", progress=self.state.progress, done=done, total=total)

    async def _skip(self, node_ids: list[str]) -> None:
        if not node_ids:
            return
        await self.services.store.nodes_skipped(self.run_id, node_ids)
        for node_id in node_ids:
            self._publish("node.skipped", node_id=node_id, status="skipped")

    async def _flush_logs_periodically(self) -> None:
        while True:
            await anyio.sleep(LOG_FLUSH_INTERVAL_S)
            await self.logs.flush()

    def _launch(
        self, tg: TaskGroup, node_ids: list[str], send: MemoryObjectSendStream[NodeOutcome]
    ) -> None:
        for node_id in node_ids:
            self.state.mark_running(node_id)
            scope = anyio.CancelScope()
            self._scopes[node_id] = scope
            tg.start_soon(self._run_node, self.plan.nodes[node_id], scope, send)

    async def _on_outcome(
        self, tg: TaskGroup, outcome: NodeOutcome, send: MemoryObjectSendStream[NodeOutcome]
    ) -> None:
        self._scopes.pop(outcome.node_id, None)
        match outcome.status:
            case NodeStatus.SUCCEEDED:
                step = self.state.mark_succeeded(outcome.node_id, outcome.output)
                await self._skip(step.skipped)
                self._launch(tg, step.ready, send)
            case NodeStatus.FAILED:
                first = not self.state.failing
                self.state.mark_failed(outcome.node_id)
                assert outcome.error is not None
                self._run_log.error(
                    f"node {outcome.node_id} failed: {outcome.error['type']}: "
                    f"{outcome.error['message']}",
                    node_id=outcome.node_id,
                )
                if first:
                    self._first_error = {**outcome.error, "node_id": outcome.node_id}
                    for scope in self._scopes.values():
                        scope.cancel()
            case NodeStatus.CANCELLED:
                self.state.mark_cancelled(outcome.node_id)
            case _:
                raise AssertionError(f"unexpected outcome {outcome.status}")
        self._publish_progress()

    async def _finish(self, started_at: datetime) -> RunStatus:
        store = self.services.store
        skipped = self.state.skip_unstarted()
        status = RunStatus.FAILED if self.state.failing else RunStatus.SUCCEEDED
        finished_at = now()
        duration = human_duration(round((finished_at - started_at).total_seconds() * 1000))
        if status is RunStatus.SUCCEEDED:
            self._run_log.info(f"run succeeded in {duration}")
        else:
            self._run_log.error(f"run failed in {duration}", error=self._first_error)
        with anyio.move_on_after(FINAL_WRITE_GRACE_S, shield=True):
            await self._skip(skipped)
            await self.logs.flush()
            # Nothing else publishes now: run.finished gets the next seq.
            final_seq = (self.services.events.run_seq(self.run_id) or 0) + 1
            await store.finish_run(
                self.run_id,
                status=status,
                outputs=self.state.outputs,
                error=self._first_error,
                finished_at=finished_at,
                event_seq=final_seq,
            )
        duration_ms = round((finished_at - started_at).total_seconds() * 1000)
        self._publish(
            "run.finished", **run_finished_data(status, finished_at, duration_ms, self._first_error)
        )
        return status

    # -- one node --------------------------------------------------------------------------

    def _node_input(self, node: PlanNode) -> tuple[Any, dict[str, Any]]:
        """Render the node's params over its upstream and trigger, and validate them."""
        upstream = self.state.upstream(node.id)
        trigger = self.run.trigger_payload
        context = {"upstream": upstream, "trigger": trigger}
        rendered = {
            key: value if key in node.block.raw_params else render_value(value, context)
            for key, value in node.params.items()
        }
        params = node.block.params_model.model_validate(rendered)
        node_input = {
            "params": params.model_dump(mode="json"),
            "upstream": upstream,
            "trigger": trigger,
        }
        return params, node_input

    async def _run_node(
        self, node: PlanNode, scope: anyio.CancelScope, send: MemoryObjectSendStream[NodeOutcome]
    ) -> None:
        store = self.services.store
        outcome: NodeOutcome | None = None
        started_at = now()
        with scope:
            node_input: Any = None
            try:
                params, node_input = self._node_input(node)
                await store.node_started(
                    self.run_id, node.id, started_at=started_at, input=node_input, attempt=1
                )
                self._publish(
                    "node.started",
                    node_id=node.id,
                    node_type=node.type,
                    status="running",
                    attempt=1,
                    started_at=started_at.isoformat(),
                )
                ctx = RunContext(
                    run_id=self.run_id,
                    workflow_id=self.run.workflow_id,
                    node_id=node.id,
                    attempt=1,
                    params=params,
                    http=self.services.http,
                    artifacts=self.services.artifacts,
                    log=NodeLog(self.logs, node.id),
                    settings=self.services.block_settings,
                )
                output = _as_json_object(await node.block.fn(node_input, ctx))
            except Exception as exc:
                error = error_info(exc)
                with anyio.CancelScope(shield=True):
                    if node_input is None:  # failed before it started: record the attempt
                        await store.node_started(
                            self.run_id, node.id, started_at=started_at, input=None, attempt=1
                        )
                    finished_at = now()
                    await store.node_finished(
                        self.run_id,
                        node.id,
                        status=NodeStatus.FAILED,
                        finished_at=finished_at,
                        error=error,
                    )
                self._publish(
                    "node.failed",
                    node_id=node.id,
                    status="failed",
                    duration_ms=_ms(started_at, finished_at),
                    error=error,
                )
                outcome = NodeOutcome(node.id, NodeStatus.FAILED, error=error)
            else:
                # Committed before any child starts: a resumed run never re-runs this node.
                with anyio.CancelScope(shield=True):
                    finished_at = now()
                    await store.node_finished(
                        self.run_id,
                        node.id,
                        status=NodeStatus.SUCCEEDED,
                        finished_at=finished_at,
                        output=output,
                    )
                self._publish(
                    "node.succeeded",
                    node_id=node.id,
                    status="succeeded",
                    duration_ms=_ms(started_at, finished_at),
                    **bounded("output", output),
                )
                outcome = NodeOutcome(node.id, NodeStatus.SUCCEEDED, output=output)
        if outcome is None:  # cancelled before it could finish
            finished_at = now()
            with anyio.move_on_after(FINAL_WRITE_GRACE_S, shield=True):
                await store.node_finished(
                    self.run_id, node.id, status=NodeStatus.CANCELLED, finished_at=finished_at
                )
            self._publish(
                "node.cancelled",
                node_id=node.id,
                status="cancelled",
                duration_ms=_ms(started_at, finished_at),
            )
            outcome = NodeOutcome(node.id, NodeStatus.CANCELLED)
        send.send_nowait(outcome)
