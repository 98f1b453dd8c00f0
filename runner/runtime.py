"""The Runtime: one task group for the process's life, one Supervisor per workflow.

Runs are leased to the process that executes them and the lease is renewed while they run;
unfinished runs whose lease lapsed (their process died) or was released (it shut down) are
claimed and resumed here. With several processes on one database, each run is claimed by
one of them (FOR UPDATE SKIP LOCKED).
"""

from __future__ import annotations

import secrets
from typing import Any, NamedTuple
from uuid import UUID, uuid4, uuid5

import anyio
import structlog
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectSendStream

from blocks.registry import BlockRegistry
from runner.engine.executor import RunServices
from runner.engine.journal import FINAL_WRITE_GRACE_S
from runner.engine.messages import (
    CancelRun,
    Drain,
    GraphUpdated,
    Interrupt,
    StartRun,
    SupervisorMessage,
)
from runner.engine.supervisor import Supervisor
from runner.errors import (
    HookNotFoundError,
    RunAlreadyFinishedError,
    ShuttingDownError,
)
from runner.graph.plan import ExecutionPlan, build_plan
from runner.graph.shape import Graph
from runner.live.bus import EventBus
from runner.live.events import RunCreated, WorkflowUpdated
from runner.live.streams import LiveStreams
from runner.models import Hook, Run, RunStatus, Workflow
from runner.store.protocol import Store

log = structlog.get_logger(__name__)

INBOX_SIZE = 256
# Webhooks looked up lately (slug → workflow id and secret). Each run insert re-checks the
# slug and secret it was verified against, so a stale entry costs a lookup, never a run.
HOOK_CACHE_SIZE = 10_000
LEASE_NAMESPACE = UUID("6f0e6a8e-3c1a-4d0e-9d8e-77e1f3b0c2a4")
CLAIM_BATCH = 500
# How long a cancel request waits for the run to reach `cancelled` before answering.
CANCEL_WAIT_S = 10.0


class RuntimeStatistics(NamedTuple):
    """A glance at the runtime, for /healthz and benchmarks."""

    supervisors: int
    runs_in_flight: int
    runs_queued: int
    inbox_depth: int


class _Waiter:
    """Callers waiting for one run to end, and how it ended (when known in memory)."""

    __slots__ = ("done", "run")

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.run: Run | None = None


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
        lease_s: float = 30.0,
        store: Store | None = None,
        instance: str | None = None,
    ) -> None:
        self.services = services
        # Requests use `store` (failing fast while the database is down: 503); runs use
        # services.store, which waits the outage out.
        self.store: Store = store or services.store
        self.events: EventBus = services.events
        self.live = LiveStreams(self.store, services.events)
        self.registry = registry
        # Leases are held in the name of this instance (a dyno, host:port): a restart of the
        # same instance takes back its runs at once instead of waiting for their leases.
        self.owner = uuid5(LEASE_NAMESPACE, instance) if instance else uuid4()
        self._idle_s = supervisor_idle_s
        self._lease_s = lease_s
        self._tg: TaskGroup | None = None
        self._mailboxes: dict[UUID, _Mailbox] = {}
        self._run_waiters: dict[UUID, _Waiter] = {}
        self._run_ended = anyio.Event()
        self._accepting = True
        self._hooks: dict[str, Hook] = {}

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Serve until cancelled (after `shutdown`, or abruptly)."""
        async with anyio.create_task_group() as tg:
            await tg.start(self.services.writer.serve)
            self._tg = tg
            tg.start_soon(self._keep_leases)
            task_status.started()
            try:
                await anyio.sleep_forever()
            finally:
                self._tg = None
                self._accepting = False

    @property
    def accepting(self) -> bool:
        return self._accepting and self._tg is not None

    def statistics(self) -> RuntimeStatistics:
        boxes = self._mailboxes.values()
        return RuntimeStatistics(
            supervisors=len(self._mailboxes),
            runs_in_flight=sum(m.supervisor.runs_in_flight for m in boxes),
            runs_queued=sum(m.supervisor.runs_queued for m in boxes),
            inbox_depth=sum(m.supervisor.inbox_depth() for m in boxes),
        )

    # -- leases and resumption -------------------------------------------------------------

    async def _keep_leases(self) -> None:
        """Renew this process's leases; claim and resume runs nobody holds."""
        first = True
        while True:
            try:
                await self.resume_orphaned_runs(include_own=first)
                first = False
                await self.store.renew_leases(self.owner, self._lease_s)
            except Exception:
                log.exception("lease_upkeep_failed")
            await anyio.sleep(self._lease_s / 3)

    async def resume_orphaned_runs(self, *, include_own: bool = False) -> int:
        """Claim unfinished runs whose process is gone and hand them to supervisors."""
        if not self.accepting:
            return 0
        runs = await self.store.claim_orphaned_runs(
            self.owner, self._lease_s, CLAIM_BATCH, include_own=include_own
        )
        for run in runs:
            log.info("run_resuming", run_id=str(run.id), status=str(run.status))
            await self._send(run.workflow_id, StartRun(run, resume=True))
        return len(runs)

    # -- workflows -------------------------------------------------------------------------

    def validate_graph(self, graph: Graph) -> ExecutionPlan:
        """The graph's execution plan; InvalidGraphError lists every problem."""
        return build_plan(graph, self.registry)

    async def create_workflow(
        self,
        *,
        name: str,
        graph: Graph,
        webhook_slug: str | None,
        webhook_secret: str | None,
        max_concurrency: int | None = None,
    ) -> Workflow:
        self.validate_graph(graph)
        return await self.store.create_workflow(
            workflow_id=uuid4(),
            name=name,
            webhook_slug=webhook_slug or secrets.token_hex(8),
            webhook_secret=webhook_secret,
            graph=graph.to_json(),
            max_concurrency=max_concurrency,
        )

    async def update_workflow(
        self,
        workflow_id: UUID,
        *,
        name: str,
        graph: Graph,
        webhook_slug: str | None,
        webhook_secret: str | None,
        keep_secret: bool = False,
        max_concurrency: int | None = None,
    ) -> Workflow:
        """Overwrite a workflow (the slug is kept when None, the secret with `keep_secret`);
        its supervisor, if any, takes the new plan."""
        plan = self.validate_graph(graph)
        workflow = await self.store.update_workflow(
            workflow_id,
            name=name,
            webhook_slug=webhook_slug,
            webhook_secret=webhook_secret,
            keep_secret=keep_secret,
            graph=graph.to_json(),
            max_concurrency=max_concurrency,
        )
        self._hooks.clear()
        self.events.publish_workflow(workflow_id, WorkflowUpdated(workflow.to_json()))
        if workflow_id in self._mailboxes:
            message = GraphUpdated(workflow.graph, plan, workflow.max_concurrency)
            await self._send(workflow_id, message, start=False)
        return workflow

    async def delete_workflow(self, workflow_id: UUID) -> None:
        await self.store.delete_workflow(workflow_id)
        self._hooks.clear()

    # -- runs ------------------------------------------------------------------------------

    async def start_run(
        self,
        workflow_id: UUID,
        *,
        trigger_type: str,
        payload: Any,
        idempotency_key: str | None = None,
        hook: Hook | None = None,
    ) -> tuple[Run, bool]:
        """Store a pending run on the workflow's current graph and hand it to its supervisor.

        Returns the run and True; or, when `idempotency_key` was used before for this
        workflow, the run it started then and False (and nothing is started).
        `hook`: the webhook (from `find_hook`) the call was verified against; raises
        HookChangedError when the workflow no longer has it (look it up afresh).
        """
        if not self.accepting:
            raise ShuttingDownError()
        # Shielded: a caller that goes away between the insert and the hand-over must not
        # leave a stored run that nobody executes.
        with anyio.CancelScope(shield=True):
            run, created = await self.store.insert_run(
                run_id=uuid4(),
                workflow_id=workflow_id,
                trigger_type=trigger_type,
                trigger_payload=payload,
                lease_owner=self.owner,
                lease_s=self._lease_s,
                idempotency_key=idempotency_key,
                hook=hook,
            )
            if created:
                await self._hand_over(run)
        return run, created

    async def start_runs(
        self, workflow_id: UUID, *, trigger_type: str, payloads: list[Any]
    ) -> list[Run]:
        """Store a batch of pending runs (one per payload) in one statement and hand them to
        the workflow's supervisor, in order."""
        if not self.accepting:
            raise ShuttingDownError()
        with anyio.CancelScope(shield=True):  # as in start_run: no stored run left behind
            runs = await self.store.insert_runs(
                run_ids=[uuid4() for _ in payloads],
                workflow_id=workflow_id,
                trigger_type=trigger_type,
                trigger_payloads=payloads,
                lease_owner=self.owner,
                lease_s=self._lease_s,
            )
            for run in runs:
                await self._hand_over(run)
        return runs

    async def _hand_over(self, run: Run) -> None:
        """Announce a run just stored and give it to its workflow's supervisor."""
        created = RunCreated(str(run.status), run.trigger_type, run.created_at.isoformat())
        self.events.run_created(run.id, run.workflow_id, created)
        await self._send(run.workflow_id, StartRun(run))

    async def find_hook(self, slug: str, *, fresh: bool = False) -> Hook:
        """The webhook with this slug, from memory unless `fresh`."""
        hook = None if fresh else self._hooks.get(slug)
        if hook is not None:
            return hook
        hook = await self.store.find_hook(slug)
        if hook is None:
            self._hooks.pop(slug, None)
            raise HookNotFoundError(f"no webhook {slug!r}")
        if len(self._hooks) >= HOOK_CACHE_SIZE:
            self._hooks.clear()
        self._hooks[slug] = hook
        return hook

    async def cancel_run(self, run_id: UUID) -> Run:
        """Cancel a pending or running run; idempotent; a finished run is a conflict."""
        run = await self.store.get_run(run_id)
        if run.status is RunStatus.CANCELLED:
            return run
        if run.status.finished:
            raise RunAlreadyFinishedError(f"run {run_id} has already {run.status}")
        await self._send(run.workflow_id, CancelRun(run))
        with anyio.move_on_after(CANCEL_WAIT_S):
            return await self.wait_run_finished(run_id)
        return await self.store.get_run(run_id)

    async def wait_run_finished(self, run_id: UUID, *, started_here: bool = False) -> Run:
        """Wait until the run has finished (in this process); returns how it ended.

        `started_here`: the caller has just started it, so it cannot have finished yet and
        the first database read is skipped.
        """
        while True:
            waiter = self._run_waiters.setdefault(run_id, _Waiter())
            if not started_here:
                run = await self.store.get_run(run_id)
                if run.status.finished:
                    return run
            started_here = False
            await waiter.done.wait()
            if waiter.run is not None and waiter.run.status.finished:
                return waiter.run

    def _run_finished(self, run_id: UUID, run: Run | None = None) -> None:
        waiter = self._run_waiters.pop(run_id, None)
        if waiter is not None:
            waiter.run = run
            waiter.done.set()
        self._run_ended.set()

    # -- shutdown --------------------------------------------------------------------------

    async def shutdown(self, grace_s: float) -> None:
        """Take no new runs; let in-flight nodes finish for up to `grace_s`; then stop the
        rest. Unfinished runs keep their committed progress and are released, so the next
        start of weft (this or another process) resumes them."""
        self._accepting = False
        await self._broadcast(Drain())
        with anyio.move_on_after(grace_s):
            await self._wait_idle()
        if self.statistics().runs_in_flight:
            log.warning("shutdown_grace_over", runs=self.statistics().runs_in_flight)
            await self._broadcast(Interrupt())
            with anyio.move_on_after(FINAL_WRITE_GRACE_S + 1):
                await self._wait_idle()
        with anyio.move_on_after(FINAL_WRITE_GRACE_S, shield=True):
            await self.services.writer.flush()
            await self.store.release_leases(self.owner)
        self.events.close_all()

    async def _wait_idle(self) -> None:
        while self.statistics().runs_in_flight:
            self._run_ended = anyio.Event()
            await self._run_ended.wait()

    async def _broadcast(self, message: SupervisorMessage) -> None:
        for workflow_id in list(self._mailboxes):
            await self._send(workflow_id, message, start=False)

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
