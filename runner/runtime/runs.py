"""Runs: stored as pending and handed to their supervisor; fired by webhooks; cancelled;
waited for."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID, uuid4

import anyio

from runner.engine.journal import Journal
from runner.engine.messages import CancelRun, StartRun
from runner.engine.services import RunServices
from runner.errors import (
    HookChangedError,
    InvalidRequestError,
    NothingToRerunError,
    RateLimitedError,
    RunAlreadyFinishedError,
    RunNotFinishedError,
    RunNotFoundError,
    ShuttingDownError,
)
from runner.graph.plan import downstream
from runner.graph.shape import Graph
from runner.live.events import RunCreated
from runner.models import NO_LINEAGE, Hook, Lineage, NodeStatus, Run, RunStatus
from runner.runtime.claims import Claims
from runner.runtime.leases import Leases
from runner.runtime.mailboxes import Mailboxes
from runner.runtime.waiters import RunWaiters
from runner.runtime.workflows import Workflows
from runner.store import notices
from runner.store.protocol import Store

# How long a cancel request waits for the run to reach `cancelled` before answering.
CANCEL_WAIT_S = 10.0
# The triggers a workflow's rate_limit bounds: run and batch calls, webhook calls (not the
# runs of workflow.run nodes, re-runs or schedules).
RATE_LIMITED = frozenset({"manual", "webhook"})


class Runs:
    """Starts, fires, cancels and waits for runs."""

    def __init__(
        self,
        store: Store,
        services: RunServices,
        *,
        mailboxes: Mailboxes,
        waiters: RunWaiters,
        leases: Leases,
        workflows: Workflows,
        claims: Claims,
        accepting: Callable[[], bool],
        tell: Callable[[list[notices.Notice]], None] = lambda _n: None,
    ) -> None:
        self._tell = tell  # wakes the other processes
        self._claims = claims
        self._store = store
        self._services = services
        self._mailboxes = mailboxes
        self._waiters = waiters
        self._leases = leases
        self._workflows = workflows
        self._accepting = accepting

    async def start(
        self,
        workflow_id: UUID,
        *,
        trigger_type: str,
        payload: Any,
        idempotency_key: str | None = None,
        hook: Hook | None = None,
        lineage: Lineage = NO_LINEAGE,
        graph: dict[str, Any] | None = None,
        rate_taken: bool = False,
    ) -> tuple[Run, bool]:
        """Store a pending run on the workflow's current graph (or `graph`, a re-run's) and
        hand it to its supervisor.

        Returns the run and True; or, when `idempotency_key` was used before for this
        workflow, the run it started then and False (and nothing is started).
        `hook`: the webhook the call was verified against; raises HookChangedError when the
        workflow no longer has it (look it up afresh). A run or webhook call takes its share
        of the workflow's rate limit first (RateLimitedError when over it), unless the
        caller took it (`rate_taken`).
        """
        if not self._accepting():
            raise ShuttingDownError()
        if trigger_type in RATE_LIMITED and not rate_taken:
            earlier = await self._take_rate_limit(workflow_id, 1, idempotency_key)
            if earlier is not None:
                return earlier, False
        # Shielded: a caller that goes away between the insert and the hand-over must not
        # leave a stored run that nobody executes.
        with anyio.CancelScope(shield=True), self._claims.reserve(1) as room:
            run, created = await self._store.insert_run(
                run_id=uuid4(),
                workflow_id=workflow_id,
                trigger_type=trigger_type,
                trigger_payload=payload,
                lease_owner=self._leases.owner,
                lease_s=self._leases.lease_s,
                idempotency_key=idempotency_key,
                hook=hook,
                take=room > 0,
                lineage=lineage,
                graph=graph,
            )
            if created:
                # A ?wait that follows cannot miss its end.
                self._waiters.expect(run.id, local=run.lease_owner == self._leases.owner)
                await self._hand_over(run)
        return run, created

    async def start_many(
        self, workflow_id: UUID, *, trigger_type: str, payloads: list[Any]
    ) -> list[Run]:
        """Store a batch of pending runs (one per payload) in one statement and hand them to
        the workflow's supervisor, in order; all of them or none within its rate limit."""
        if not self._accepting():
            raise ShuttingDownError()
        if trigger_type in RATE_LIMITED:
            await self._take_rate_limit(workflow_id, len(payloads))
        # As in start: no stored run left behind; room for those leased here held meanwhile.
        with anyio.CancelScope(shield=True), self._claims.reserve(len(payloads)) as room:
            runs = await self._store.insert_runs(
                run_ids=[uuid4() for _ in payloads],
                workflow_id=workflow_id,
                trigger_type=trigger_type,
                trigger_payloads=payloads,
                lease_owner=self._leases.owner,
                lease_s=self._leases.lease_s,
                take=room,
            )
            for run in runs:
                await self._hand_over(run)
        return runs

    async def _hand_over(self, run: Run) -> None:
        """Announce a run just stored; give it to its workflow's supervisor when it is
        leased to this process, else let claims find it (here or in another process)."""
        if self._services.metrics is not None:
            self._services.metrics.run_started(run.trigger_type)
        created = RunCreated(str(run.status), run.trigger_type, run.created_at.isoformat())
        self._services.events.run_created(run.id, run.workflow_id, created)
        taken = run.lease_owner == self._leases.owner
        self._tell([notices.RunCreated(run.id, run.workflow_id, waiting=not taken)])
        if taken:
            await self._mailboxes.send(run.workflow_id, StartRun(run))
        else:
            self._claims.wake(waiting=True)

    async def fire_hook(
        self,
        slug: str,
        *,
        body: bytes,
        signature: str | None,
        payload: Callable[[], Awaitable[Any]],
        idempotency_key: str | None = None,
    ) -> tuple[Run, bool]:
        """Start a run from a webhook call, as `start` does; `payload()` is read once the
        webhook is known and its signature checked (an unknown or unsigned call is refused
        whatever its body)."""
        hook = await self._workflows.verified_hook(slug, body, signature)
        payload_value = await payload()
        # Once per call, though it may be inserted twice.
        earlier = await self._take_rate_limit(hook.workflow_id, 1, idempotency_key)
        if earlier is not None:
            return earlier, False
        try:
            # The insert re-checks the remembered hook: no run starts on a stale copy.
            return await self.start(
                hook.workflow_id,
                trigger_type="webhook",
                payload=payload_value,
                idempotency_key=idempotency_key,
                hook=hook,
                rate_taken=True,
            )
        except HookChangedError:
            # Changed or gone since remembered, or a repeated idempotency key: look again.
            fresh = await self._workflows.verified_hook(slug, body, signature, fresh=True)
            if fresh.workflow_id != hook.workflow_id:  # the slug went to another workflow
                await self._take_rate_limit(fresh.workflow_id, 1)
            return await self.start(
                fresh.workflow_id,
                trigger_type="webhook",
                payload=payload_value,
                idempotency_key=idempotency_key,
                rate_taken=True,
            )

    async def _take_rate_limit(
        self, workflow_id: UUID, runs: int, idempotency_key: str | None = None
    ) -> Run | None:
        """Take `runs` cells of the workflow's rate limit (in PostgreSQL, so that it holds
        across processes), or raise RateLimitedError. A workflow without one costs no
        statement: whether it has one is remembered (Workflows.rate_limit). A repeated
        `idempotency_key` takes nothing: the run it started then, to answer with."""
        limit = await self._workflows.rate_limit(workflow_id)
        if limit is None:
            return None
        if idempotency_key is not None:
            earlier = await self._store.find_run_by_key(workflow_id, idempotency_key)
            if earlier is not None:
                return earlier
        wait_s = await self._store.take_rate_limit(workflow_id, runs)
        if wait_s is None:
            return None
        if math.isinf(wait_s):
            raise InvalidRequestError(
                f"{runs} runs at once never fit in workflow {workflow_id}'s rate limit of "
                f"{limit.requests} per {limit.per_s:g} s: start at most {limit.requests}",
                "runs",
            )
        raise RateLimitedError(wait_s, requests=limit.requests, per_s=limit.per_s)

    async def rerun(self, run_id: UUID, from_node: str | None = None) -> Run:
        """A new run on the graph the finished run executed: `from_node` and everything
        downstream of it run again (without it: the run's failed and cancelled nodes and
        what is downstream of them); the others' outputs are copied when it starts."""
        old = await self._store.get_run(run_id)
        if not old.status.finished:
            raise RunNotFinishedError(f"run {run_id} is {old.status}: re-run it once it ends")
        assert old.graph is not None  # a run keeps the graph it ran
        plan = self._workflows.validate_graph(Graph.model_validate(old.graph))
        if from_node is not None:
            if from_node not in plan.nodes:
                raise InvalidRequestError(f"run {run_id} has no node {from_node!r}", "from")
            again = downstream(plan, {from_node})
        else:
            stopped = (NodeStatus.FAILED, NodeStatus.CANCELLED)
            nodes = await self._store.list_node_runs(run_id)
            again = downstream(plan, {n.node_id for n in nodes if n.status in stopped})
            if not again:
                raise NothingToRerunError(
                    f"run {run_id} has no failed or cancelled node: give `from` to run "
                    "again from a node"
                )
        run, _ = await self.start(
            old.workflow_id,
            trigger_type="rerun",
            payload=old.trigger_payload,
            lineage=Lineage(rerun_of=old.id, rerun_nodes=tuple(sorted(again))),
            graph=old.graph,
        )
        return run

    async def cancel(self, run_id: UUID) -> Run:
        """Cancel a pending or running run, whichever process holds it; idempotent; a
        finished run is a conflict. Answers once it is cancelled (or after CANCEL_WAIT_S,
        as it is then)."""
        run = await self._store.get_run(run_id)
        if run.status is RunStatus.CANCELLED:
            return run
        if run.status.finished:
            raise RunAlreadyFinishedError(f"run {run_id} has already {run.status}")
        if self._mailboxes.has(run.workflow_id):
            # Through the supervisor's inbox: after any StartRun of it still on its way.
            self._waiters.expect(run_id)  # before the supervisor can end it
            await self._mailboxes.send(run.workflow_id, CancelRun(run))
        else:
            services = self._services
            journal = Journal(
                run, writer=services.writer, store=self._store, events=services.events
            )
            cancelled = await journal.cancel_stored(run, owner=services.owner)
            if cancelled is not None:
                self._waiters.run_finished(run.id, cancelled)  # a ?wait here, say
                if services.metrics is not None:  # no supervisor here tells of its end
                    services.metrics.run_finished(cancelled)
                return cancelled
            # Held by another live process, which was asked: wait for its answer.
        with anyio.move_on_after(CANCEL_WAIT_S):
            return await self._waiters.wait_run_finished(run_id)
        return await self._store.get_run(run_id)

    async def cancel_children(self, run_id: UUID) -> None:
        """Cancel the unfinished runs that the run's workflow.run nodes started (and so on
        down: a child's own end cancels its children)."""
        for child in await self._store.list_unfinished_children(run_id):
            with contextlib.suppress(RunAlreadyFinishedError, RunNotFoundError):
                await self.cancel(child)

    async def wait_finished(self, run_id: UUID, *, unfinished: bool = False) -> Run:
        """Wait until the run has finished (in this process); how it ended."""
        return await self._waiters.wait_run_finished(run_id, unfinished=unfinished)
