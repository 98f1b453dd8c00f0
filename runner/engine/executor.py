"""One run, executed: each node starts the moment its parents have finished.

The executor is the only task that changes the run's state; node tasks run a block (with
its retries and timeout), commit its result and report back over a stream.

A run ends succeeded, failed or cancelled; or it pauses (a shutdown): in-flight nodes finish
or go back to pending, and the run stays `running` for a later start to resume it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
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
from runner.engine.node_log import NodeLog, RunLog
from runner.engine.run_state import RunState
from runner.graph.plan import ExecutionPlan, PlanNode
from runner.json_values import without_nul
from runner.live.bus import EventBus, bounded
from runner.live.streams import run_finished_data
from runner.models import NodeStatus, Run, RunStatus, human_duration
from runner.store.db import RawJson
from runner.store.postgres import Store
from runner.store.writer import NodeEnd, NodeStart, RunEnd, Writer

log = structlog.get_logger(__name__)

# Final writes after a cancellation still get this long, shielded.
FINAL_WRITE_GRACE_S = 5.0
RETRY_BACKOFF_CAP_S = 300.0
OUTPUT_PREVIEW_CHARS = 1000


@dataclass(frozen=True, slots=True)
class RunLimits:
    """Per-run limits from the settings."""

    max_output_bytes: int = 1024 * 1024


@dataclass(frozen=True, slots=True)
class RunServices:
    """What runs need from the process: persistence, shared clients, settings."""

    store: Store
    events: EventBus
    writer: Writer
    http: httpx.AsyncClient
    artifacts: ArtifactStore
    block_settings: BlockSettings
    limits: RunLimits = RunLimits()


@dataclass(frozen=True, slots=True)
class NodeOutcome:
    """A node task's report to its run; PENDING means it was interrupted by a shutdown."""

    node_id: str
    status: NodeStatus
    output: Any = None
    error: dict[str, Any] | None = None


class Stop(Enum):
    """Why a run stops early."""

    NONE = "none"
    CANCEL = "cancel"  # the user cancelled it: in-flight nodes cancelled
    DRAIN = "drain"  # shutting down: no new nodes; in-flight ones may finish
    INTERRUPT = "interrupt"  # grace is over: in-flight nodes go back to pending


class BlockOutputError(TypeError):
    """The block returned something that is not a JSON object."""


class NodeTimeoutError(TimeoutError):
    """The node's attempt took longer than its timeout_s."""


def now() -> datetime:
    return datetime.now(UTC)


def error_info(exc: BaseException) -> dict[str, Any]:
    """An exception as stored on a node or run: its type and message."""
    message = str(exc) or (type(exc).__doc__ or "").strip().split("\n")[0]
    return {"type": type(exc).__name__, "message": without_nul(message)}


def retry_delay(backoff: float, retry: int) -> float:
    """Seconds before retry number `retry` (1-based): exponential, capped, with jitter."""
    delay: float = min(RETRY_BACKOFF_CAP_S, backoff * 2 ** (retry - 1))
    return delay * random.uniform(0.5, 1.0)


def _ms(start: datetime, end: datetime) -> int:
    return max(0, round((end - start).total_seconds() * 1000))


def _encode_output(output: Any) -> tuple[dict[str, Any], bytes]:
    """The output as children will see it, and as JSON (what is stored)."""
    if not isinstance(output, dict):
        raise BlockOutputError(f"a block must return a dict, not {type(output).__name__}")
    try:
        encoded = orjson.dumps(output, option=orjson.OPT_NON_STR_KEYS)
    except TypeError as exc:
        raise BlockOutputError(f"the block's output is not JSON: {exc}") from None
    if b"\\u0000" in encoded:  # PostgreSQL cannot store NUL; it becomes U+FFFD
        encoded = orjson.dumps(without_nul(output), option=orjson.OPT_NON_STR_KEYS)
    # Decoded again so that what children see is exactly what was stored.
    decoded = orjson.loads(encoded)
    assert isinstance(decoded, dict)
    return decoded, encoded


class RunExecutor:
    """Executes one run on its plan (a fresh run, or the resumption of an interrupted one)."""

    def __init__(
        self, services: RunServices, run: Run, plan: ExecutionPlan, *, resume: bool = False
    ) -> None:
        self.services = services
        self.run = run
        self.resume = resume
        self.plan = plan
        self.state = RunState(plan)
        self.logs = RunLog(services.writer, services.events, run.id, run.workflow_id)
        self._run_log = NodeLog(self.logs, None)
        self._writer = services.writer
        self._scopes: dict[str, anyio.CancelScope] = {}
        self._first_error: dict[str, Any] | None = None
        self._stop = Stop.NONE
        self._wakeup: MemoryObjectSendStream[NodeOutcome] | None = None
        # The run as it ended (what a waiter is answered with, without a database read).
        self.final_run: Run | None = None

    @property
    def run_id(self) -> UUID:
        return self.run.id

    # -- control (called by the supervisor) ------------------------------------------------

    def cancel(self) -> None:
        """Cancel the run: in-flight nodes are cancelled, nothing new starts."""
        if self._stop in (Stop.NONE, Stop.DRAIN):
            self._stop = Stop.CANCEL
            self._cancel_nodes()

    def drain(self) -> None:
        """Start no new node; let in-flight ones finish; then pause."""
        if self._stop is Stop.NONE:
            self._stop = Stop.DRAIN
            self._poke()

    def interrupt(self) -> None:
        """Stop in-flight nodes now; they run again when the run is resumed."""
        if self._stop in (Stop.NONE, Stop.DRAIN):
            self._stop = Stop.INTERRUPT
            self._cancel_nodes()

    def _cancel_nodes(self) -> None:
        for scope in self._scopes.values():
            scope.cancel()
        self._poke()

    def _poke(self) -> None:
        # Wakes the loop when no node is running to report (a run paused between nodes).
        if self._wakeup is not None and not self.state.running:
            with contextlib.suppress(anyio.WouldBlock, anyio.ClosedResourceError):
                self._wakeup.send_nowait(NodeOutcome("", NodeStatus.PENDING))

    # -- the run ---------------------------------------------------------------------------

    async def execute(self) -> RunStatus:
        """Run to the end; returns the final status, or RUNNING when paused by a shutdown."""
        started_at = await self._begin()
        # Every node reports once per launch, plus one wake-up: the buffer never fills.
        send, receive = anyio.create_memory_object_stream[NodeOutcome](len(self.plan.nodes) + 1)
        self._wakeup = send
        async with send, receive, anyio.create_task_group() as tg:
            step = self.state.start()
            await self._skip(step.skipped)
            self._launch(tg, step.ready, send)
            # Node tasks settle their own outcomes (see _run_node) and report here, where
            # progress is published and the end is noticed.
            while not self._done():
                await receive.receive()
                # Take every report already waiting (a fan-out ends in a burst) without a
                # trip through the event loop each, and publish progress once for them all.
                with contextlib.suppress(anyio.WouldBlock):
                    while True:
                        receive.receive_nowait()
                self._publish_progress()
        self._wakeup = None
        if self._stop in (Stop.DRAIN, Stop.INTERRUPT) and not self._complete():
            return await self._pause()
        return await self._finish(started_at)

    def _complete(self) -> bool:
        return self.state.finished

    def _done(self) -> bool:
        if self.state.finished:
            return True
        return self._stop is not Stop.NONE and self.state.running == 0

    async def _begin(self) -> datetime:
        """Start the run, or resume it (its committed successes stand)."""
        store = self.services.store
        if not self.resume:
            started_at = now()
            # Not awaited: a crash before it lands leaves a pending run, resumed the same way.
            self._writer.run_started(self.run_id, started_at)
            self._publish("run.started", status="running", started_at=started_at.isoformat())
            self._run_log.info("run started", trigger=self.run.trigger_type)
            return started_at
        done = 0
        for node in await store.list_node_runs(self.run_id):
            if node.status is NodeStatus.SUCCEEDED:
                self.state.restore(node.node_id, NodeStatus.SUCCEEDED, node.output)
                done += 1
        await store.reset_unfinished_nodes(self.run_id)
        started_at = self.run.started_at or now()
        self._publish(
            "run.started", status="running", started_at=started_at.isoformat(), resumed=True
        )
        self._run_log.info(
            f"run resumed: {done} of {len(self.plan.nodes)} nodes had succeeded", resumed=done
        )
        return started_at

    def _publish(self, type: str, **data: Any) -> None:
        self.services.events.publish(self.run_id, self.run.workflow_id, type, data)

    def _publish_progress(self) -> None:
        self._publish(
            "run.progress",
            progress=self.state.progress,
            done=self.state.terminal_count,
            total=len(self.state.status),
        )

    async def _skip(self, node_ids: list[str]) -> None:
        if not node_ids:
            return
        await self._writer.nodes_ended(
            [NodeEnd(self.run_id, node_id, NodeStatus.SKIPPED) for node_id in node_ids]
        )
        for node_id in node_ids:
            self._publish("node.skipped", node_id=node_id, status="skipped")

    def _launch(
        self, tg: TaskGroup, node_ids: list[str], send: MemoryObjectSendStream[NodeOutcome]
    ) -> None:
        if self._stop is not Stop.NONE:
            return
        for node_id in node_ids:
            scope = self._mark_running(node_id)
            tg.start_soon(self._run_node, tg, self.plan.nodes[node_id], scope, send)

    def _mark_running(self, node_id: str) -> anyio.CancelScope:
        self.state.mark_running(node_id)
        scope = self._scopes[node_id] = anyio.CancelScope()
        return scope

    def _settle(self, outcome: NodeOutcome) -> None:
        """Record a node's end other than success (a failure cancels the running nodes)."""
        self._scopes.pop(outcome.node_id, None)
        match outcome.status:
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
            case NodeStatus.PENDING:
                self.state.mark_pending(outcome.node_id)
            case _:
                raise AssertionError(f"unexpected outcome {outcome.status}")

    async def _finish(self, started_at: datetime) -> RunStatus:
        finished_at = now()
        cancelled = self._stop is Stop.CANCEL and not self.state.failing
        if cancelled:
            status = RunStatus.CANCELLED
            leftover = self.state.cancel_unstarted()
            self._first_error = {"type": "Cancelled", "message": "the run was cancelled"}
        else:
            status = RunStatus.FAILED if self.state.failing else RunStatus.SUCCEEDED
            leftover = self.state.skip_unstarted()
        duration_ms = _ms(started_at, finished_at)
        report = self._run_log.info if status is RunStatus.SUCCEEDED else self._run_log.error
        report(f"run {status} in {human_duration(duration_ms)}", error=self._first_error)
        with anyio.move_on_after(FINAL_WRITE_GRACE_S, shield=True):
            if cancelled:
                await self._writer.nodes_ended(
                    [
                        NodeEnd(self.run_id, n, NodeStatus.CANCELLED, finished_at=finished_at)
                        for n in leftover
                    ]
                )
                for node_id in leftover:
                    self._publish("node.cancelled", node_id=node_id, status="cancelled")
            else:
                await self._skip(leftover)
            # Nothing else publishes now: run.finished gets the next seq.
            final_seq = (self.services.events.run_seq(self.run_id) or 0) + 1
            await self._writer.run_ended(
                RunEnd(
                    self.run_id,
                    status,
                    self.state.outputs,
                    self._first_error,
                    finished_at,
                    final_seq,
                )
            )
        self._publish(
            "run.finished",
            **run_finished_data(status, finished_at, duration_ms, self._first_error),
        )
        self.final_run = dataclasses.replace(
            self.run,
            status=status,
            outputs=self.state.outputs,
            error=self._first_error,
            started_at=self.run.started_at or started_at,
            finished_at=finished_at,
            event_seq=final_seq,
            nodes_total=len(self.plan.nodes),
            nodes_done=len(self.plan.nodes),
        )
        return status

    async def _pause(self) -> RunStatus:
        done = sum(1 for s in self.state.status.values() if s is NodeStatus.SUCCEEDED)
        self._run_log.warning(
            f"run paused by a shutdown after {done} of {len(self.plan.nodes)} nodes; "
            "it resumes when weft starts again"
        )
        with anyio.move_on_after(FINAL_WRITE_GRACE_S, shield=True):
            await self._writer.flush()
        self._publish("run.paused", status="running")
        return RunStatus.RUNNING

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
        self,
        tg: TaskGroup,
        node: PlanNode,
        scope: anyio.CancelScope,
        send: MemoryObjectSendStream[NodeOutcome],
    ) -> None:
        """Run the node and settle its outcome here, as soon as it is known; on success,
        release its children and run the first one made ready in this same task (a chain
        costs no task per node). Reports to the run's loop when it stops."""
        while True:
            outcome: NodeOutcome | None = None
            started_at = now()
            with scope:
                outcome = await self._attempts(node, started_at)
            if outcome is None:  # cancelled before it could finish
                outcome = await self._stopped(node, started_at)
            if outcome.status is not NodeStatus.SUCCEEDED:
                self._settle(outcome)
                send.send_nowait(outcome)
                return
            self._scopes.pop(node.id, None)
            step = self.state.mark_succeeded(node.id, outcome.output)
            await self._skip(step.skipped)
            # (A node may have failed while the skips were committed: start nothing then.)
            if not step.ready or self._stop is not Stop.NONE or self.state.failing:
                send.send_nowait(outcome)
                return
            self._publish_progress()
            first, *others = step.ready
            self._launch(tg, others, send)
            node = self.plan.nodes[first]
            scope = self._mark_running(first)

    async def _attempts(self, node: PlanNode, started_at: datetime) -> NodeOutcome:
        policy = node.policy
        try:
            params, node_input = self._node_input(node)
        except Exception as exc:  # a template or params error: retrying cannot help
            return await self._failed(node, started_at, exc, attempt=1)
        encoded_input = RawJson(orjson.dumps(node_input, option=orjson.OPT_NON_STR_KEYS).decode())
        attempt = 0
        while True:
            attempt += 1
            attempt_started = now()
            # Not awaited: the node's end carries the same fields, so a lost start is harmless.
            self._writer.node_started(
                NodeStart(self.run_id, node.id, attempt_started, encoded_input, attempt)
            )
            self._publish(
                "node.started",
                node_id=node.id,
                node_type=node.type,
                status="running",
                attempt=attempt,
                started_at=attempt_started.isoformat(),
            )
            try:
                output = await self._attempt(node, params, node_input, attempt)
            except Exception as exc:
                if attempt > policy.retries:
                    return await self._failed(
                        node, attempt_started, exc, attempt=attempt, node_input=encoded_input
                    )
                delay = retry_delay(policy.retry_backoff, attempt)
                NodeLog(self.logs, node.id).warning(
                    f"attempt {attempt} of {policy.retries + 1} failed: "
                    f"{type(exc).__name__}: {exc}; retrying in {delay:.2f} s",
                    attempt=attempt,
                    error=error_info(exc),
                )
                await anyio.sleep(delay)
                continue
            return await self._succeeded(node, attempt_started, output, attempt, encoded_input)

    async def _attempt(
        self, node: PlanNode, params: Any, node_input: dict[str, Any], attempt: int
    ) -> tuple[dict[str, Any], bytes]:
        ctx = RunContext(
            run_id=self.run_id,
            workflow_id=self.run.workflow_id,
            node_id=node.id,
            attempt=attempt,
            timeout_s=node.timeout_s,
            params=params,
            http=self.services.http,
            artifacts=self.services.artifacts,
            log=NodeLog(self.logs, node.id),
            settings=self.services.block_settings,
        )
        with anyio.move_on_after(node.timeout_s) as timeout:
            return _encode_output(await node.block.fn(node_input, ctx))
        assert timeout.cancelled_caught
        raise NodeTimeoutError(
            f"attempt {attempt} took longer than its timeout of {node.timeout_s:g} s"
        )

    async def _succeeded(
        self,
        node: PlanNode,
        started_at: datetime,
        result: tuple[dict[str, Any], bytes],
        attempt: int,
        node_input: RawJson,
    ) -> NodeOutcome:
        output, encoded = result
        # Committed before any child starts: a resumed run never re-runs this node.
        with anyio.CancelScope(shield=True):
            if len(encoded) > self.services.limits.max_output_bytes:
                output = await self._output_as_artifact(node, encoded)
                encoded = orjson.dumps(output)
            finished_at = now()
            end = NodeEnd(
                self.run_id,
                node.id,
                NodeStatus.SUCCEEDED,
                started_at=started_at,
                finished_at=finished_at,
                input=node_input,
                output=RawJson(encoded.decode()),
                attempt=attempt,
            )
            if node.outgoing:
                await self._writer.node_ended(end)
            else:
                # No child waits on it: it is committed with the next batch, at the latest
                # with the run's end, saving the run a round trip.
                self._writer.node_ended_soon(end)
        self._publish(
            "node.succeeded",
            node_id=node.id,
            status="succeeded",
            duration_ms=_ms(started_at, finished_at),
            **bounded("output", output),
        )
        return NodeOutcome(node.id, NodeStatus.SUCCEEDED, output=output)

    async def _output_as_artifact(self, node: PlanNode, encoded: bytes) -> dict[str, Any]:
        """An output over the cap is stored as an artifact; the node's output refers to it."""
        stored = await self.services.artifacts.put(
            run_id=self.run_id,
            node_id=node.id,
            path=f"weft-outputs/{self.run_id}/{node.id}.json",
            data=encoded,
            content_type="application/json",
        )
        NodeLog(self.logs, node.id).warning(
            f"output of {len(encoded)} bytes is over the {self.services.limits.max_output_bytes}"
            f"-byte cap: stored as artifact {stored.id}",
            artifact_id=str(stored.id),
        )
        return {
            "truncated": True,
            "artifact_id": str(stored.id),
            "uri": stored.uri,
            "size": stored.size,
            "preview": encoded[:OUTPUT_PREVIEW_CHARS].decode(errors="ignore"),
        }

    async def _failed(
        self,
        node: PlanNode,
        started_at: datetime,
        exc: BaseException,
        *,
        attempt: int,
        node_input: RawJson | None = None,
    ) -> NodeOutcome:
        error = error_info(exc)
        with anyio.CancelScope(shield=True):
            finished_at = now()
            await self._writer.node_ended(
                NodeEnd(
                    self.run_id,
                    node.id,
                    NodeStatus.FAILED,
                    started_at=started_at,
                    finished_at=finished_at,
                    input=node_input,
                    error=error,
                    attempt=attempt,
                )
            )
        self._publish(
            "node.failed",
            node_id=node.id,
            status="failed",
            duration_ms=_ms(started_at, finished_at),
            error=error,
        )
        return NodeOutcome(node.id, NodeStatus.FAILED, error=error)

    async def _stopped(self, node: PlanNode, started_at: datetime) -> NodeOutcome:
        """The node's scope was cancelled: by a shutdown (back to pending) or else cancelled."""
        finished_at = now()
        if self._stop is Stop.INTERRUPT:
            NodeLog(self.logs, node.id).warning("interrupted by a shutdown; it runs again")
            with anyio.move_on_after(FINAL_WRITE_GRACE_S, shield=True):
                await self._writer.node_ended(
                    NodeEnd(self.run_id, node.id, NodeStatus.PENDING, started_at=started_at)
                )
            self._publish("node.interrupted", node_id=node.id, status="pending")
            return NodeOutcome(node.id, NodeStatus.PENDING)
        with anyio.move_on_after(FINAL_WRITE_GRACE_S, shield=True):
            await self._writer.node_ended(
                NodeEnd(
                    self.run_id,
                    node.id,
                    NodeStatus.CANCELLED,
                    started_at=started_at,
                    finished_at=finished_at,
                )
            )
        self._publish(
            "node.cancelled",
            node_id=node.id,
            status="cancelled",
            duration_ms=_ms(started_at, finished_at),
        )
        return NodeOutcome(node.id, NodeStatus.CANCELLED)
