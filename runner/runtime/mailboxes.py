"""Mailboxes: one Supervisor per workflow, started on its first message and retired after
it has idled, so memory stays bounded with many workflows."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple
from uuid import UUID

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectSendStream

from blocks.registry import BlockRegistry
from runner.engine.messages import StartRun, SupervisorMessage
from runner.engine.services import RunServices
from runner.engine.supervisor import Supervisor
from runner.errors import ShuttingDownError
from runner.models import Run

INBOX_SIZE = 256


class _Mailbox(NamedTuple):
    supervisor: Supervisor
    send: MemoryObjectSendStream[SupervisorMessage]


class RuntimeStatistics(NamedTuple):
    """A glance at the runtime, for /healthz and benchmarks."""

    supervisors: int
    runs_in_flight: int
    runs_queued: int
    inbox_depth: int


class Mailboxes:
    """Routes messages to each workflow's supervisor, starting one when needed."""

    def __init__(
        self,
        services: RunServices,
        registry: BlockRegistry,
        *,
        idle_s: float,
        on_run_finished: Callable[[UUID, Run | None, UUID | None], None],
    ) -> None:
        self._services = services
        self._registry = registry
        self._idle_s = idle_s
        self._on_run_finished = on_run_finished
        self._boxes: dict[UUID, _Mailbox] = {}
        self._tg: TaskGroup | None = None

    def serve_in(self, tg: TaskGroup | None) -> None:
        """Start supervisors in `tg` from now on (None: start no more)."""
        self._tg = tg

    def has(self, workflow_id: UUID) -> bool:
        return workflow_id in self._boxes

    def holds(self, workflow_id: UUID, run_id: UUID) -> bool:
        """True when the run executes in this process or waits in it for a slot."""
        mailbox = self._boxes.get(workflow_id)
        return mailbox is not None and mailbox.supervisor.holds(run_id)

    def statistics(self) -> RuntimeStatistics:
        boxes = self._boxes.values()
        return RuntimeStatistics(
            supervisors=len(self._boxes),
            runs_in_flight=sum(m.supervisor.runs_in_flight for m in boxes),
            runs_queued=sum(m.supervisor.runs_queued for m in boxes),
            inbox_depth=sum(m.supervisor.inbox_depth() for m in boxes),
        )

    async def send(
        self, workflow_id: UUID, message: SupervisorMessage, *, start: bool = True
    ) -> None:
        """Deliver to the workflow's supervisor (started when `start`, else dropped when
        there is none)."""
        for _ in range(3):
            mailbox = self._boxes.get(workflow_id)
            if mailbox is None:
                if not start:
                    return
                mailbox = self._start_supervisor(workflow_id)
            try:
                if isinstance(message, StartRun):
                    mailbox.supervisor.arriving += 1
                try:
                    mailbox.send.send_nowait(message)
                except anyio.WouldBlock:
                    await mailbox.send.send(message)
                return
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                if isinstance(message, StartRun):
                    mailbox.supervisor.arriving -= 1
                # It retired between lookup and send; a fresh one takes the message.
                if self._boxes.get(workflow_id) is mailbox:
                    del self._boxes[workflow_id]
        raise RuntimeError(f"could not deliver {type(message).__name__} to {workflow_id}")

    async def broadcast(self, message: SupervisorMessage) -> None:
        for workflow_id in list(self._boxes):
            await self.send(workflow_id, message, start=False)

    def _start_supervisor(self, workflow_id: UUID) -> _Mailbox:
        # Registered synchronously, so two concurrent first messages share one supervisor.
        if self._tg is None:
            raise ShuttingDownError()
        send, receive = anyio.create_memory_object_stream[SupervisorMessage](INBOX_SIZE)
        supervisor = Supervisor(
            workflow_id,
            services=self._services,
            registry=self._registry,
            inbox=receive,
            self_send=send.clone(),
            idle_s=self._idle_s,
            try_retire=self._try_retire,
            on_run_finished=self._on_run_finished,
        )
        mailbox = _Mailbox(supervisor, send)
        self._boxes[workflow_id] = mailbox
        self._tg.start_soon(self._serve, mailbox, name=f"supervisor {workflow_id}")
        return mailbox

    async def _serve(self, mailbox: _Mailbox) -> None:
        try:
            await mailbox.supervisor.serve()
        finally:
            if self._boxes.get(mailbox.supervisor.workflow_id) is mailbox:
                del self._boxes[mailbox.supervisor.workflow_id]
            mailbox.send.close()

    def _try_retire(self, supervisor: Supervisor) -> bool:
        """Called by an idle supervisor: retire it unless a message is waiting."""
        mailbox = self._boxes.get(supervisor.workflow_id)
        if supervisor.inbox_depth() or (
            mailbox is not None and mailbox.supervisor is not supervisor
        ):
            return False
        if mailbox is not None:
            del self._boxes[supervisor.workflow_id]
            mailbox.send.close()
        return True
