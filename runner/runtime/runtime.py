"""The Runtime: one task group for the process's life, in which every supervisor (and so
every run) lives; it puts together the mailboxes, leases, waiters, workflows and runs, and
shuts them down gracefully."""

from __future__ import annotations

import dataclasses
from uuid import UUID

import anyio
import anyio.abc
import structlog

from blocks.registry import BlockRegistry
from runner.engine.journal import FINAL_WRITE_GRACE_S
from runner.engine.messages import Drain, Interrupt
from runner.engine.services import RunServices
from runner.models import Run, RunStatus
from runner.runtime.children import DEFAULT_MAX_DEPTH, ChildRuns
from runner.runtime.claims import Claims
from runner.runtime.leases import Leases
from runner.runtime.mailboxes import Mailboxes, RuntimeStatistics
from runner.runtime.relay import Relay
from runner.runtime.runs import Runs
from runner.runtime.scheduler import Scheduler
from runner.runtime.waiters import RunWaiters
from runner.runtime.workflows import Workflows
from runner.store import notices
from runner.store.listener import Listener
from runner.store.notifier import Notifier
from runner.store.protocol import Store
from runner.store.run_inserts import RunInserts
from runner.store.schedules import PostgresSchedules

log = structlog.get_logger(__name__)

# Runs a process holds at most (executing or waiting here for a slot): sized for a 512 MB
# dyno (see README, "Scaling out").
DEFAULT_MAX_RUNS = 100


class Runtime:
    """Runs beside the web server in the process's top-level task group (see `run`)."""

    def __init__(
        self,
        services: RunServices,
        registry: BlockRegistry,
        *,
        supervisor_idle_s: float = 60.0,
        lease_s: float = 30.0,
        max_runs: int = DEFAULT_MAX_RUNS,
        event_retention_s: float | None = None,
        run_retention_s: float | None = None,
        max_depth: int = DEFAULT_MAX_DEPTH,
        store: Store | None = None,
        listener: Listener | None = None,
        notifier: Notifier | None = None,
        schedules: PostgresSchedules | None = None,
        run_inserts: RunInserts | None = None,
    ) -> None:
        self._notifier = notifier
        self._run_inserts = run_inserts  # `store`'s, when it inserts runs in groups
        # Runs that workflow.run nodes start go through self.runs, made below.
        children = ChildRuns(max_depth)
        services = dataclasses.replace(services, children=children)
        self.services = services
        # Requests use `store` (failing fast while the database is down: 503); runs use
        # services.store, which waits the outage out.
        self.store: Store = store or services.store
        self.registry = registry
        self._accepting = False
        self.waiters = RunWaiters(self.store)
        self.mailboxes = Mailboxes(
            services,
            registry,
            idle_s=supervisor_idle_s,
            on_run_finished=self._run_finished,
        )
        self.claims = Claims(
            services.store,
            self.mailboxes,
            owner=services.owner,
            max_runs=max_runs,
            lease_s=lease_s,
            accepting=lambda: self.accepting,
        )
        self.leases = Leases(
            self.store,
            self.mailboxes,
            owner=services.owner,
            lease_s=lease_s,
            accepting=lambda: self.accepting,
            on_cancel_asked=self._cancel_asked,
            event_retention_s=event_retention_s,
            run_retention_s=run_retention_s,
            on_pruned=(
                services.metrics.runs_deleted if services.metrics is not None else lambda _n: None
            ),
            room=self.claims.room,
        )
        self.workflows = Workflows(self.store, registry, services.events, self.mailboxes)
        self.runs = Runs(
            self.store,
            services,
            mailboxes=self.mailboxes,
            waiters=self.waiters,
            leases=self.leases,
            workflows=self.workflows,
            claims=self.claims,
            accepting=lambda: self.accepting,
            tell=notifier.tell if notifier is not None else lambda _n: None,
        )
        self.relay = Relay(
            services.store,
            services.events,
            mailboxes=self.mailboxes,
            waiters=self.waiters,
            workflows=self.workflows,
            on_room=lambda: self.claims.wake(waiting=True),
            on_joined=notifier.joined if notifier is not None else lambda: None,
            on_following=notifier.following if notifier is not None else lambda: None,
            owner=services.owner,
        )
        children.attach(self.runs)
        if services.metrics is not None:
            services.metrics.watch(
                in_flight=lambda: self.statistics().runs_in_flight,
                subscribers=services.events.subscriber_counts,
            )
        self.scheduler = (
            None
            if schedules is None
            else Scheduler(schedules, self.runs, accepting=lambda: self.accepting)
        )
        self._tg: anyio.abc.TaskGroup | None = None
        self._listener = listener
        if listener is not None:
            listener.attach(self.relay.received, self.relay.connected, self.relay.follows)

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Serve until cancelled (after `shutdown`, or abruptly)."""
        async with anyio.create_task_group() as tg:
            if self._notifier is not None:
                await tg.start(self._notifier.serve)
            await tg.start(self.services.writer.serve)
            if self._run_inserts is not None:
                await tg.start(self._run_inserts.serve)
            tg.start_soon(self.relay.serve)
            if self._listener is not None:
                await tg.start(self._listener.serve)
            self.mailboxes.serve_in(tg)
            self._accepting = True
            tg.start_soon(self.leases.keep)
            tg.start_soon(self.claims.keep)
            if self.scheduler is not None:
                tg.start_soon(self.scheduler.keep)
            self._tg = tg
            task_status.started()
            try:
                await anyio.sleep_forever()
            finally:
                self._tg = None
                self.mailboxes.serve_in(None)
                self._accepting = False

    def _run_finished(self, run_id: UUID, run: Run | None, limited: UUID | None) -> None:
        self.waiters.run_finished(run_id, run)
        # None: paused by a shutdown, or its end could not be read (it is not counted).
        if run is not None and run.status.finished and self.services.metrics is not None:
            self.services.metrics.run_finished(run)
        if run is not None and run.status in (RunStatus.FAILED, RunStatus.CANCELLED):
            if self._tg is not None:  # its children go with it
                self._tg.start_soon(self.runs.cancel_children, run_id)
        # Room for a waiting run here; a slot of its workflow's limit too, when it had one,
        # which every process may use.
        self.claims.wake(waiting=limited is not None)
        if limited is not None and self._notifier is not None:
            self._notifier.tell([notices.RoomFreed(limited)])

    def _cancel_asked(self, run_id: UUID, workflow_id: UUID) -> None:
        self.relay.received(False, [notices.CancelRequested(run_id, workflow_id)])

    @property
    def accepting(self) -> bool:
        """True while new runs are taken."""
        return self._accepting

    def statistics(self) -> RuntimeStatistics:
        """A glance at the runtime, for /healthz and benchmarks."""
        return self.mailboxes.statistics()

    def _in_flight(self) -> int:
        return self.statistics().runs_in_flight

    async def shutdown(self, grace_s: float) -> None:
        """Take no new runs; let in-flight nodes finish for up to `grace_s`; then stop the
        rest. Unfinished runs keep their committed progress and are released, so the next
        start of weft (this or another process) resumes them."""
        self._accepting = False
        await self.mailboxes.broadcast(Drain())
        with anyio.move_on_after(grace_s):
            await self.waiters.wait_idle(self._in_flight)
        if self._in_flight():
            log.warning("shutdown_grace_over", runs=self._in_flight())
            await self.mailboxes.broadcast(Interrupt())
            with anyio.move_on_after(FINAL_WRITE_GRACE_S + 1):
                await self.waiters.wait_idle(self._in_flight)
        with anyio.move_on_after(FINAL_WRITE_GRACE_S, shield=True):
            await self.services.writer.flush()
            await self.leases.release()
        self.services.events.close_all()
