"""The Supervisor: one actor per workflow, holding its cached execution plan, its runs in
flight and its queue of runs waiting for a slot (max_concurrency).

Only the supervisor's loop changes its state: its run tasks report back with RunEnded,
and it steers each run by sending it StopRun.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any
from uuid import UUID

import anyio
import structlog
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from blocks.registry import BlockRegistry
from runner.engine.attempt import error_info, now
from runner.engine.executor import RunExecutor
from runner.engine.journal import Journal
from runner.engine.messages import (
    CancelRun,
    Drain,
    GraphUpdated,
    Interrupt,
    RunEnded,
    StartRun,
    Stop,
    StopRun,
    SupervisorMessage,
)
from runner.engine.services import RunServices
from runner.errors import InvalidGraphError, WorkflowNotFoundError
from runner.graph.plan import ExecutionPlan, build_plan
from runner.models import Run, RunStatus

log = structlog.get_logger(__name__)


class Supervisor:
    """Receives a workflow's messages and runs its runs; only it mutates its state."""

    def __init__(
        self,
        workflow_id: UUID,
        *,
        services: RunServices,
        registry: BlockRegistry,
        inbox: MemoryObjectReceiveStream[SupervisorMessage],
        self_send: MemoryObjectSendStream[SupervisorMessage],
        idle_s: float,
        try_retire: Callable[[Supervisor], bool],
        on_run_finished: Callable[[UUID, Run | None, UUID | None], None],
    ) -> None:
        self.workflow_id = workflow_id
        self._services = services
        self._registry = registry
        self._inbox = inbox
        self._self_send = self_send
        self._idle_s = idle_s
        self._try_retire = try_retire
        self._on_run_finished = on_run_finished
        self._plan_graph: dict[str, Any] | None = None
        self._plan: ExecutionPlan | None = None
        # Runs in flight: their executor, or None while one fails to start.
        self._runs: dict[UUID, RunExecutor | None] = {}
        self._queue: deque[StartRun] = deque()
        self._max_concurrency: int | None = None
        self._draining = False
        self.arriving = 0  # StartRuns sent and not yet handled (counted by Mailboxes)

    @property
    def runs_in_flight(self) -> int:
        return len(self._runs)

    @property
    def runs_queued(self) -> int:
        """Runs waiting here for a slot, or on their way in (a StartRun not yet handled:
        a message handed to a waiting receiver is in no buffer)."""
        return len(self._queue) + self.arriving

    def holds(self, run_id: UUID) -> bool:
        """True when the run executes here or waits here for a slot."""
        return run_id in self._runs or any(s.run.id == run_id for s in self._queue)

    def inbox_depth(self) -> int:
        return self._inbox.statistics().current_buffer_used

    async def serve(self) -> None:
        """The actor loop; ends when retired after idling, or once drained."""
        async with self._inbox, self._self_send, anyio.create_task_group() as tg:
            await self._load_settings()
            while True:
                message: SupervisorMessage | None = None
                try:
                    # A busy supervisor takes what is waiting without arming a timer.
                    message = self._inbox.receive_nowait()
                except anyio.WouldBlock:
                    with anyio.move_on_after(self._idle_s):
                        message = await self._inbox.receive()
                if message is None:
                    if not self._runs and not self._queue and self._try_retire(self):
                        return
                    continue
                self._handle(tg, message)
                if self._draining and not self._runs:
                    return

    async def _load_settings(self) -> None:
        try:
            workflow = await self._services.store.get_workflow(self.workflow_id)
        except WorkflowNotFoundError:
            return
        self._max_concurrency = workflow.max_concurrency

    def _handle(self, tg: TaskGroup, message: SupervisorMessage) -> None:
        match message:
            case StartRun():
                self.arriving = max(0, self.arriving - 1)
                if self._draining:
                    return  # stays unfinished and leased; resumed after the restart
                self._queue.append(message)
                self._start_queued(tg)
            case CancelRun(run=run):
                self._cancel(tg, run)
            case GraphUpdated(graph=graph, plan=plan, max_concurrency=limit):
                self._plan_graph, self._plan = graph, plan
                self._max_concurrency = limit
                self._start_queued(tg)
            case RunEnded(run_id=run_id, run=run):
                self._runs.pop(run_id, None)
                # With the workflow when it held a slot of a limit (a waiting run may take it).
                limited = self.workflow_id if self._max_concurrency is not None else None
                self._on_run_finished(run_id, run, limited)
                self._start_queued(tg)
            case Drain():
                self._draining = True
                self._queue.clear()
                self._tell_all(StopRun(Stop.DRAIN))
            case Interrupt():
                self._tell_all(StopRun(Stop.INTERRUPT))

    def _tell_all(self, message: StopRun) -> None:
        for executor in self._runs.values():
            if executor is not None:
                executor.deliver(message)

    def _has_slot(self) -> bool:
        return self._max_concurrency is None or len(self._runs) < self._max_concurrency

    def _start_queued(self, tg: TaskGroup) -> None:
        while self._queue and self._has_slot() and not self._draining:
            start = self._queue.popleft()
            if start.run.id in self._runs:
                continue  # already executing (a duplicate StartRun)
            self._start(tg, start.run, resume=start.resume)
        if self._queue:
            log.debug("runs_queued", workflow_id=str(self.workflow_id), queued=len(self._queue))

    def _cancel(self, tg: TaskGroup, run: Run) -> None:
        run_id = run.id
        executor = self._runs.get(run_id)
        if executor is not None:
            executor.deliver(StopRun(Stop.CANCEL))
            return
        if run_id in self._runs:
            return  # failing to start; it finishes by itself
        self._queue = deque(s for s in self._queue if s.run.id != run_id)
        tg.start_soon(self._cancel_stored, run)

    def _cache_plan(self, graph: dict[str, Any]) -> ExecutionPlan:
        plan = build_plan(graph, self._registry)
        self._plan_graph, self._plan = graph, plan
        return plan

    def _plan_for(self, graph: dict[str, Any]) -> ExecutionPlan:
        # Runs carry their own copy of the graph; the cached plan serves while it matches.
        if self._plan is not None and self._plan_graph == graph:
            return self._plan
        return self._cache_plan(graph)

    def _start(self, tg: TaskGroup, run: Run, *, resume: bool) -> None:
        assert run.graph is not None
        try:
            plan = self._plan_for(run.graph)
        except InvalidGraphError as exc:
            self._runs[run.id] = None
            tg.start_soon(self._fail_unrunnable, run, exc)
            return
        executor = RunExecutor(self._services, run, plan, resume=resume)
        self._runs[run.id] = executor
        tg.start_soon(self._execute, executor)

    async def _execute(self, executor: RunExecutor) -> None:
        run = executor.run
        ended: Run | None = None
        try:
            ended = await executor.execute()
            log.debug("run_ended", run_id=str(run.id), status=ended and str(ended.status))
        except Exception as exc:
            log.exception("run_crashed", run_id=str(run.id))
            await self._fail_unrunnable(run, exc, notify=False)
        finally:
            await self._notify_finished(RunEnded(run.id, ended))

    async def _notify_finished(self, message: RunEnded) -> None:
        with anyio.CancelScope(shield=True):
            await self._self_send.send(message)

    def _journal(self, run: Run) -> Journal:
        services = self._services
        return Journal(run, writer=services.writer, store=services.store, events=services.events)

    async def _fail_unrunnable(self, run: Run, exc: Exception, *, notify: bool = True) -> None:
        error = error_info(exc)
        if isinstance(exc, InvalidGraphError):
            error["details"] = [p.to_json() for p in exc.problems]
        # A failure to record the failure must not take the supervisor (and its other runs)
        # down with it: the run stays unfinished in the database and is logged here.
        try:
            await self._journal(run).run_finished(
                RunStatus.FAILED, outputs={}, error=error, started_at=None, finished_at=now()
            )
        except Exception:
            log.exception("run_failure_not_recorded", run_id=str(run.id))
        if notify:
            await self._notify_finished(RunEnded(run.id))

    async def _cancel_stored(self, run: Run) -> None:
        """Cancel a run that is not executing here (queued, or left by another process);
        one that another live process holds is asked of that process."""
        ended: Run | None = None
        services = self._services
        try:
            ended = await self._journal(run).cancel_stored(run, owner=services.owner)
        except Exception:
            log.exception("run_cancel_not_recorded", run_id=str(run.id))
        await self._notify_finished(RunEnded(run.id, ended))
