"""One run, executed by its owner, the RunExecutor: it holds the run's RunState and decides;
node tasks only run blocks and report what happened.

Every message to a run (a node task's NodeOutput, NodeFailure or NodeStopped; the
supervisor's StopRun) goes through `deliver`, which applies it with `_handle`, the only
code that changes the RunState. `_handle` is synchronous and never awaits, so each message
is applied whole and in the order delivered, whichever task delivers it: the executor owns
its state without a hop through the event loop per message (a hop and a new task per node,
measured, made chain100 ~30% slower). Its answer to a NodeOutput is the first child that
output made ready, which the reporting task runs next, so a chain costs no task per node.
The owner task (`execute`) starts the run, publishes progress once per burst of messages,
notices the end and records it.

A run ends succeeded, failed or cancelled; or it pauses (a shutdown): in-flight nodes finish
or go back to pending, and the run stays `running` for a later start to resume it.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

import anyio
from anyio.abc import TaskGroup

from blocks.context import RunContext
from blocks.templating import NO_SECRETS, SecretValues
from runner.engine.attempt import Failed, OutputCap, Result, error_info, now, perform, prepare
from runner.engine.deferred import DeferredWriter
from runner.engine.items import perform_items, render_items
from runner.engine.journal import Journal
from runner.engine.messages import (
    Assignment,
    NodeFailure,
    NodeOutput,
    NodeStopped,
    RunMessage,
    Stop,
    StopRun,
)
from runner.engine.node_log import NodeListener, NodeLog
from runner.engine.reruns import copy_earlier_outputs
from runner.engine.run_state import RunState, Step
from runner.engine.services import RunServices
from runner.graph.plan import ExecutionPlan, PlanNode
from runner.models import (
    CANCELLED_ERROR,
    Durability,
    NodeStatus,
    Run,
    RunStatus,
    duration_ms,
    human_duration,
)


class RunExecutor:
    """Executes one run on its plan (a fresh run, or the resumption of an interrupted one)."""

    def __init__(
        self, services: RunServices, run: Run, plan: ExecutionPlan, *, resume: bool = False
    ) -> None:
        self.services = services
        self.run = run
        self.plan = plan
        self.resume = resume
        self.state = RunState(plan)
        writer = services.writer
        if run.durability is Durability.EXIT:
            writer = DeferredWriter(writer)  # nothing persisted before the run's end
        self.journal = Journal(run, writer=writer, store=services.store, events=services.events)
        self._changed = anyio.Event()
        self._cap = OutputCap(services.limits.max_output_bytes, services.artifacts)
        self._scopes: dict[str, anyio.CancelScope] = {}
        self._first_error: dict[str, object] | None = None
        self._stop = Stop.NONE
        self._tg: TaskGroup | None = None
        children = services.children
        self._children = None if children is None else children.of(run, self.journal.masked)

    def deliver(self, message: RunMessage) -> Assignment | None:
        """Apply a message to the run at once (see the module docstring); for a NodeOutput,
        the node its reporting task runs next, if any."""
        assignment = self._handle(message)
        if assignment is None:
            self._changed.set()  # the owner publishes progress and checks for the end
        else:  # the run goes on in this task: its progress is told before the next node's start
            self._publish_progress()
        return assignment

    def _publish_progress(self) -> None:
        self.journal.progress(done=self.state.terminal_count, total=len(self.plan.nodes))

    # -- the owner -------------------------------------------------------------------------

    async def execute(self) -> Run | None:
        """Run to the end; the run as it ended, or None when a shutdown paused it."""
        started_at = await self._begin()
        async with anyio.create_task_group() as tg:
            self._tg = tg
            self._start_ready(self.state.start())
            while not self._done():
                await self._changed.wait()
                # Everything delivered since the last look (a fan-out ends in a burst) is
                # reported as progress once.
                self._changed = anyio.Event()
                self._publish_progress()
        self._tg = None
        if self._stop in (Stop.DRAIN, Stop.INTERRUPT) and not self.state.finished:
            await self._pause()
            return None
        return await self._finish(started_at)

    def _done(self) -> bool:
        return self.state.finished or (self._stop is not Stop.NONE and not self.state.running)

    def _handle(self, message: RunMessage) -> Assignment | None:
        match message:
            case NodeOutput(node_id=node_id, output=output):
                self._scopes.pop(node_id, None)
                return self._start_ready(self.state.mark_succeeded(node_id, output), inline=True)
            case NodeFailure(node_id=node_id, error=error, handled=True):
                self._scopes.pop(node_id, None)
                on_error = self.plan.nodes[node_id].policy.on_error
                self.journal.log(
                    None,
                    "warning",
                    f"node {node_id} failed: {error['type']}: {error['message']} "
                    f"(on_error {on_error}: the run goes on)",
                    {"node_id": node_id},
                )
                return self._start_ready(
                    self.state.mark_handled(node_id, {"error": error}), inline=True
                )
            case NodeFailure(node_id=node_id, error=error):
                self._scopes.pop(node_id, None)
                first = not self.state.failing
                self.state.mark_failed(node_id)
                self.journal.log(
                    None,
                    "error",
                    f"node {node_id} failed: {error['type']}: {error['message']}",
                    {"node_id": node_id},
                )
                if first:  # fail-fast: the nodes still running are cancelled
                    self._first_error = {**error, "node_id": node_id}
                    self._cancel_running()
            case NodeStopped(node_id=node_id, started_at=started_at):
                self._scopes.pop(node_id, None)
                if self._stop is Stop.INTERRUPT:
                    self.state.mark_pending(node_id)
                    self.journal.node_interrupted(node_id, started_at)
                else:
                    self.state.mark_cancelled(node_id)
                    self.journal.node_cancelled(node_id, started_at)
            case StopRun(reason=Stop.DRAIN):
                if self._stop is Stop.NONE:
                    self._stop = Stop.DRAIN  # start nothing new; in-flight nodes finish
            case StopRun(reason=(Stop.CANCEL | Stop.INTERRUPT) as reason):
                if self._stop in (Stop.NONE, Stop.DRAIN):
                    self._stop = reason
                    self._cancel_running()
        return None

    def _start_ready(self, step: Step, *, inline: bool = False) -> Assignment | None:
        """Record the step's skips and start its ready nodes, each in a task of its own, but
        the first when `inline`: that one is returned, for the reporting task to run."""
        self.journal.nodes_skipped(step.skipped)
        if self._stop is not Stop.NONE or self.state.failing or not step.ready:
            return None
        assert self._tg is not None  # outputs come from node tasks, which live in it
        first, *others = step.ready
        for node_id in others:
            self._tg.start_soon(self._node_task, self._assign(node_id))
        if inline:
            return self._assign(first)
        self._tg.start_soon(self._node_task, self._assign(first))
        return None

    def _assign(self, node_id: str) -> Assignment:
        self.state.mark_running(node_id)
        scope = self._scopes[node_id] = anyio.CancelScope()
        return Assignment(
            self.plan.nodes[node_id],
            scope,
            self.state.upstream(node_id),
            self.state.visible(node_id),
        )

    def _cancel_running(self) -> None:
        for scope in self._scopes.values():
            scope.cancel()

    async def _begin(self) -> datetime:
        """Start the run, or resume it (its committed successes stand)."""
        if not self.resume:
            started_at = now()
            self.journal.run_started(started_at)
            self.journal.log(None, "info", "run started", {"trigger": self.run.trigger_type})
            if self.run.lineage.rerun_of is not None:
                await copy_earlier_outputs(
                    self.run, self.plan, self.state, self.journal, self.services.store
                )
            return started_at
        store = self.services.store
        self.journal.resume_from(await store.last_event_seq(self.run.id))
        done, reset = 0, 0
        for node in await store.list_node_runs(self.run.id):
            handled = node.status is NodeStatus.FAILED and node.output is not None
            if node.status is NodeStatus.SUCCEEDED or handled:
                self.state.restore(node.node_id, node.status, node.output)
                done += 1
            elif node.status is not NodeStatus.PENDING:
                # It runs again: pending, in the rows and in the log alike.
                self.journal.node_reset(node.node_id)
                reset += 1
        if reset:
            await self.journal.commit()  # before a reset node starts again
        started_at = self.run.started_at or now()
        self.journal.run_resumed(started_at)
        self.journal.log(
            None,
            "info",
            f"run resumed: {done} of {len(self.plan.nodes)} nodes had succeeded",
            {"resumed": done},
        )
        return started_at

    async def _finish(self, started_at: datetime) -> Run:
        finished_at = now()
        cancelled = self._stop is Stop.CANCEL and not self.state.failing
        if cancelled:
            status = RunStatus.CANCELLED
            leftover = self.state.cancel_unstarted()
            self._first_error = dict(CANCELLED_ERROR)
        else:
            status = RunStatus.FAILED if self.state.failing else RunStatus.SUCCEEDED
            leftover = self.state.skip_unstarted()
        took = human_duration(duration_ms(started_at, finished_at) or 0)
        level = "info" if status is RunStatus.SUCCEEDED else "error"
        self.journal.log(None, level, f"run {status} in {took}", {"error": self._first_error})
        if cancelled:
            for node_id in leftover:
                self.journal.node_cancelled(node_id, finished_at=finished_at)
        else:
            self.journal.nodes_skipped(leftover)
        seq = await self.journal.run_finished(
            status,
            outputs=self.state.outputs,
            error=self._first_error,
            started_at=started_at,
            finished_at=finished_at,
        )
        # As recorded: what its waiters answer (?wait) shows no secret either.
        return dataclasses.replace(
            self.run,
            status=status,
            outputs=self.journal.masked(self.state.outputs),
            error=self.journal.masked(self._first_error),
            started_at=self.run.started_at or started_at,
            finished_at=finished_at,
            event_seq=seq,
            nodes_total=len(self.plan.nodes),
            nodes_done=len(self.plan.nodes),
        )

    async def _pause(self) -> None:
        done = sum(1 for s in self.state.status.values() if s is NodeStatus.SUCCEEDED)
        self.journal.log(
            None,
            "warning",
            f"run paused by a shutdown after {done} of {len(self.plan.nodes)} nodes; "
            "it resumes when weft starts again",
        )
        await self.journal.run_paused()

    # -- node tasks ------------------------------------------------------------------------

    async def _node_task(self, assignment: Assignment | None) -> None:
        """Run the assigned node and report it; then the node the report's answer names."""
        while assignment is not None:
            assignment = self.deliver(await self._run_node(assignment))

    def _context(self, node: PlanNode, params: Any, attempt: int, log: NodeLog) -> RunContext:
        return RunContext(
            run_id=self.run.id,
            workflow_id=self.run.workflow_id,
            node_id=node.id,
            attempt=attempt,
            timeout_s=node.timeout_s,
            params=params,
            http=self.services.http,
            artifacts=self.services.artifacts,
            log=log,
            settings=self.services.block_settings,
            workflows=self._children,
        )

    async def _secrets(self, node: PlanNode) -> SecretValues:
        """The secrets' values for a node that reads them (masked in all the run records
        from now on); none for the others."""
        if not node.uses_secrets or self.services.secrets is None:
            return NO_SECRETS
        values = await self.services.secrets.values()
        self.journal.redactor.add(values.values())
        return SecretValues(values)

    async def _run_items(
        self, assignment: Assignment, log: NodeLog, started_at: datetime
    ) -> tuple[Result, str | None]:
        """A for_each node: its block once per item (runner/engine/items.py)."""
        node = assignment.node
        try:
            items = render_items(
                node,
                assignment.upstream,
                self.run.trigger_payload,
                assignment.nodes,
                max_items=self.services.limits.max_items,
                secrets=await self._secrets(node),
            )
        except Exception as exc:  # the list could not be made: retrying cannot help
            return Failed(error_info(exc), 1, started_at), None
        encoded_input = items.stored_input(node)
        self.journal.node_started(node.id, node.type, 1, started_at, encoded_input)
        finished = await self.services.store.list_node_items(self.run.id, node.id)
        result = await perform_items(
            node,
            items,
            finished=finished,
            journal=self.journal,
            context=lambda params, attempt: self._context(node, params, attempt, log),
            cap=self._cap,
            started_at=started_at,
        )
        return result, encoded_input

    async def _run_node(self, assignment: Assignment) -> NodeOutput | NodeFailure | NodeStopped:
        """Run one node's attempts and record how they ended (its success is committed
        before the report, when children wait on it)."""
        node = assignment.node
        started_at = now()
        encoded_input: str | None = None
        result: Result | None = None
        log = NodeLog(self.journal, node.id)
        with assignment.scope:
            if node.policy.for_each is not None:
                result, encoded_input = await self._run_items(assignment, log, started_at)
            else:
                try:
                    node_input = prepare(
                        node,
                        assignment.upstream,
                        self.run.trigger_payload,
                        assignment.nodes,
                        secrets=await self._secrets(node),
                    )
                except Exception as exc:  # a template or params error: retrying cannot help
                    result = Failed(error_info(exc), 1, started_at)
                else:
                    encoded_input = node_input.encoded
                    result = await perform(
                        node,
                        node_input,
                        context=lambda attempt: self._context(
                            node, node_input.params, attempt, log
                        ),
                        cap=self._cap,
                        listener=NodeListener(self.journal, node, node_input.encoded),
                    )
        if result is None:  # its scope was cancelled before it could finish
            return NodeStopped(node.id, started_at)
        if (metrics := self.services.metrics) is not None:
            metrics.node_finished(node.type, isinstance(result, Failed), now() - started_at)
        if isinstance(result, Failed):
            handled = node.policy.handles_errors
            await self.journal.node_failed(
                node.id,
                error=result.error,
                attempt=result.attempt,
                input=encoded_input,
                started_at=result.started_at,
                handled=node.policy.on_error if handled else None,
            )
            return NodeFailure(node.id, result.error, handled)
        assert encoded_input is not None
        await self.journal.node_succeeded(
            node.id,
            output=result.output,
            encoded=result.encoded,
            attempt=result.attempt,
            input=encoded_input,
            started_at=result.started_at,
            finished_at=result.finished_at,
            # In sync durability children wait for the commit (a resume never runs it again).
            children_wait=bool(node.outgoing) and self.run.durability is Durability.SYNC,
        )
        return NodeOutput(node.id, result.output)
