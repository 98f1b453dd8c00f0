"""The Supervisor: one actor per workflow, holding its cached execution plan and its runs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID

import anyio
import structlog
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from blocks.registry import BlockRegistry
from runner.execution import RunExecutor, RunServices, error_info, now
from runner.graph import ExecutionPlan, InvalidGraphError, build_plan
from runner.live import run_finished_data
from runner.messages import GraphUpdated, RunFinished, Shutdown, StartRun, SupervisorMessage
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
        on_run_finished: Callable[[UUID], None],
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
        self._runs: set[UUID] = set()
        self._stopping = False

    @property
    def runs_in_flight(self) -> int:
        return len(self._runs)

    def inbox_depth(self) -> int:
        return self._inbox.statistics().current_buffer_used

    async def serve(self) -> None:
        """The actor loop; ends when retired after idling, or after Shutdown and its runs."""
        async with self._inbox, self._self_send, anyio.create_task_group() as tg:
            while True:
                message: SupervisorMessage | None = None
                with anyio.move_on_after(self._idle_s):
                    message = await self._inbox.receive()
                if message is None:
                    if not self._runs and self._try_retire(self):
                        return
                    continue
                match message:
                    case StartRun(run=run):
                        self._start(tg, run)
                    case GraphUpdated(graph=graph):
                        self._cache_plan(graph)
                    case RunFinished(run_id=run_id):
                        self._runs.discard(run_id)
                        self._on_run_finished(run_id)
                    case Shutdown():
                        self._stopping = True
                if self._stopping and not self._runs:
                    return

    def _cache_plan(self, graph: dict[str, Any]) -> ExecutionPlan:
        plan = build_plan(graph, self._registry)
        self._plan_graph, self._plan = graph, plan
        return plan

    def _plan_for(self, graph: dict[str, Any]) -> ExecutionPlan:
        # Runs carry their own copy of the graph; the cached plan serves while it matches.
        if self._plan is not None and self._plan_graph == graph:
            return self._plan
        return self._cache_plan(graph)

    def _start(self, tg: anyio.abc.TaskGroup, run: Run) -> None:
        self._runs.add(run.id)
        tg.start_soon(self._execute, run)

    async def _execute(self, run: Run) -> None:
        try:
            assert run.graph is not None
            try:
                plan = self._plan_for(run.graph)
            except InvalidGraphError as exc:
                await self._fail_unrunnable(run, exc)
                return
            status = await RunExecutor(self._services, run, plan).execute()
            log.info("run_finished", run_id=str(run.id), status=str(status))
        except Exception as exc:
            log.exception("run_crashed", run_id=str(run.id))
            await self._fail_unrunnable(run, exc)
        finally:
            with anyio.CancelScope(shield=True):
                await self._self_send.send(RunFinished(run.id))

    async def _fail_unrunnable(self, run: Run, exc: Exception) -> None:
        error = error_info(exc)
        if isinstance(exc, InvalidGraphError):
            error["details"] = [p.to_json() for p in exc.problems]
        # A failure to record the failure must not take the supervisor (and its other runs)
        # down with it: the run stays unfinished in the database and is logged here.
        events = self._services.events
        finished_at = now()
        final_seq = (events.run_seq(run.id) or 0) + 1
        try:
            with anyio.move_on_after(5, shield=True):
                await self._services.store.finish_run(
                    run.id,
                    status=RunStatus.FAILED,
                    outputs={},
                    error=error,
                    finished_at=finished_at,
                    event_seq=final_seq,
                )
        except Exception:
            log.exception("run_failure_not_recorded", run_id=str(run.id))
            return
        events.publish(
            run.id,
            run.workflow_id,
            "run.finished",
            run_finished_data(RunStatus.FAILED, finished_at, None, error),
        )
