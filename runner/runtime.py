"""The Runtime: one task group for the process's life, one Supervisor per workflow."""

from __future__ import annotations

import secrets
from typing import Any, NamedTuple
from uuid import UUID, uuid4

import anyio
import structlog
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectSendStream

from blocks.registry import BlockRegistry
from runner.errors import HookNotFoundError, ShuttingDownError
from runner.events import EventBus
from runner.execution import RunServices
from runner.graph import Graph, InvalidGraphError, validate_graph
from runner.live import LiveStreams
from runner.messages import GraphUpdated, Shutdown, StartRun, SupervisorMessage
from runner.models import Run, Workflow
from runner.store import Store
from runner.supervisor import Supervisor

log = structlog.get_logger(__name__)

INBOX_SIZE = 256


class RuntimeStatistics(NamedTuple):
    """A glance at the runtime, for /healthz and benchmarks."""

    supervisors: int
    runs_in_flight: int
    inbox_depth: int


class _Mailbox(NamedTuple):
    supervisor: Supervisor
    send: MemoryObjectSendStream[SupervisorMessage]


class Runtime:
    """Starts runs and routes messages to each workflow's supervisor.

    `run()` owns the task group every supervisor (and so every run) lives in; it runs
    beside the web server in the process's top-level task group.
    """

    def __init__(
        self,
        services: RunServices,
        registry: BlockRegistry,
        *,
        supervisor_idle_s: float = 60.0,
    ) -> None:
        self.services = services
        self.store: Store = services.store
        self.events: EventBus = services.events
        self.live = LiveStreams(services.store, services.events)
        self.registry = registry
        self._idle_s = supervisor_idle_s
        self._tg: TaskGroup | None = None
        self._mailboxes: dict[UUID, _Mailbox] = {}
        self._run_waiters: dict[UUID, anyio.Event] = {}
        self._accepting = True

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Serve until cancelled."""
        async with anyio.create_task_group() as tg:
            self._tg = tg
            task_status.started()
            try:
                await anyio.sleep_forever()
            finally:
                self._tg = None
                self._accepting = False

    def statistics(self) -> RuntimeStatistics:
        return RuntimeStatistics(
            supervisors=len(self._mailboxes),
            runs_in_flight=sum(m.supervisor.runs_in_flight for m in self._mailboxes.values()),
            inbox_depth=sum(m.supervisor.inbox_depth() for m in self._mailboxes.values()),
        )

    # -- workflows -------------------------------------------------------------------------

    def check_graph(self, graph: Graph) -> None:
        """Raise InvalidGraphError listing every problem of the graph."""
        problems = validate_graph(graph, self.registry)
        if problems:
            raise InvalidGraphError(problems)

    async def create_workflow(
        self, *, name: str, graph: Graph, webhook_slug: str | None, webhook_secret: str | None
    ) -> Workflow:
        self.check_graph(graph)
        return await self.store.create_workflow(
            workflow_id=uuid4(),
            name=name,
            webhook_slug=webhook_slug or secrets.token_hex(8),
            webhook_secret=webhook_secret,
            graph=graph.to_json(),
        )

    async def update_workflow(
        self,
        workflow_id: UUID,
        *,
        name: str,
        graph: Graph,
        webhook_slug: str | None,
        webhook_secret: str | None,
    ) -> Workflow:
        """Overwrite a workflow; its supervisor (if any) rebuilds its plan."""
        self.check_graph(graph)
        current = await self.store.get_workflow(workflow_id)
        workflow = await self.store.update_workflow(
            workflow_id,
            name=name,
            webhook_slug=webhook_slug or current.webhook_slug,
            webhook_secret=webhook_secret,
            graph=graph.to_json(),
        )
        self.events.publish_workflow(
            workflow_id, "workflow.updated", {"workflow": workflow.to_json()}
        )
        if workflow_id in self._mailboxes:
            await self._send(workflow_id, GraphUpdated(workflow.graph), start=False)
        return workflow

    async def delete_workflow(self, workflow_id: UUID) -> None:
        await self.store.delete_workflow(workflow_id)

    # -- runs ------------------------------------------------------------------------------

    async def start_run(self, workflow_id: UUID, *, trigger_type: str, payload: Any) -> Run:
        """Store a pending run on the workflow's current graph and hand it to its supervisor."""
        if not self._accepting or self._tg is None:
            raise ShuttingDownError()
        # Shielded: a caller that goes away between the insert and the hand-over must not
        # leave a stored run that nobody executes.
        with anyio.CancelScope(shield=True):
            run = await self.store.insert_run(
                run_id=uuid4(),
                workflow_id=workflow_id,
                trigger_type=trigger_type,
                trigger_payload=payload,
            )
            self.events.run_created(run.id, workflow_id, run.to_json())
            await self._send(workflow_id, StartRun(run))
        return run

    async def start_hook_run(self, slug: str, payload: Any) -> Run:
        workflow = await self.store.find_workflow_by_slug(slug)
        if workflow is None:
            raise HookNotFoundError(f"no webhook {slug!r}")
        return await self.start_run(workflow.id, trigger_type="webhook", payload=payload)

    async def wait_run_finished(self, run_id: UUID) -> Run:
        """Wait until the run has finished (in this process); returns it as stored."""
        event = self._run_waiters.setdefault(run_id, anyio.Event())
        run = await self.store.get_run(run_id)
        if not run.status.finished:
            await event.wait()
            run = await self.store.get_run(run_id)
        return run

    def _run_finished(self, run_id: UUID) -> None:
        event = self._run_waiters.pop(run_id, None)
        if event is not None:
            event.set()

    # -- supervisors -----------------------------------------------------------------------

    async def _send(
        self, workflow_id: UUID, message: SupervisorMessage, *, start: bool = True
    ) -> None:
        for _ in range(3):
            mailbox = self._mailboxes.get(workflow_id)
            if mailbox is None:
                if not start:
                    return
                mailbox = self._start_supervisor(workflow_id)
            try:
                try:
                    mailbox.send.send_nowait(message)
                except anyio.WouldBlock:
                    await mailbox.send.send(message)
                return
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                # It retired between lookup and send; a fresh one takes the message.
                if self._mailboxes.get(workflow_id) is mailbox:
                    del self._mailboxes[workflow_id]
        raise RuntimeError(f"could not deliver {type(message).__name__} to {workflow_id}")

    def _start_supervisor(self, workflow_id: UUID) -> _Mailbox:
        # Registered synchronously, so two concurrent first messages share one supervisor.
        if self._tg is None:
            raise ShuttingDownError()
        send, receive = anyio.create_memory_object_stream[SupervisorMessage](INBOX_SIZE)
        supervisor = Supervisor(
            workflow_id,
            services=self.services,
            registry=self.registry,
            inbox=receive,
            self_send=send.clone(),
            idle_s=self._idle_s,
            try_retire=self._try_retire,
            on_run_finished=self._run_finished,
        )
        mailbox = _Mailbox(supervisor, send)
        self._mailboxes[workflow_id] = mailbox
        self._tg.start_soon(self._serve_supervisor, mailbox, name=f"supervisor {workflow_id}")
        return mailbox

    async def _serve_supervisor(self, mailbox: _Mailbox) -> None:
        try:
            await mailbox.supervisor.serve()
        finally:
            if self._mailboxes.get(mailbox.supervisor.workflow_id) is mailbox:
                del self._mailboxes[mailbox.supervisor.workflow_id]
            mailbox.send.close()

    def _try_retire(self, supervisor: Supervisor) -> bool:
        """Called by an idle supervisor: retire it unless a message is waiting."""
        mailbox = self._mailboxes.get(supervisor.workflow_id)
        if supervisor.inbox_depth() or (
            mailbox is not None and mailbox.supervisor is not supervisor
        ):
            return False
        if mailbox is not None:
            del self._mailboxes[supervisor.workflow_id]
            mailbox.send.close()
        return True

    async def shutdown_supervisors(self) -> None:
        self._accepting = False
        for workflow_id in list(self._mailboxes):
            await self._send(workflow_id, Shutdown(), start=False)
