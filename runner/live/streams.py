"""Live message streams for clients (websocket or SSE): a snapshot, then events.

Rules a client can rely on: every message has `type`, `run_id`, `seq`, `ts`; a snapshot
carries the `seq` of the last event it reflects, and only events after it follow; a client
that lagged gets `lagged` and then a fresh snapshot; reconnecting with `after=SEQ` replays
what followed SEQ, or re-syncs with a snapshot when those events are no longer in memory.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from uuid import UUID

import anyio

from runner.live.bus import EventBus, GoingAwayError, LaggedError, Subscription
from runner.live.events import Event, Lagged, RunFinished, RunSnapshot, WorkflowSnapshot
from runner.models import Run
from runner.store.protocol import Store

# A stream yields events (published ones are shared by every subscriber and encoded once;
# snapshots and `lagged` are made for it), or None (nothing new: a heartbeat's cue).
Item = Event | None


class LiveStreams:
    """Builds the message streams of a run and of a workflow."""

    def __init__(self, store: Store, bus: EventBus) -> None:
        self._store = store
        self._bus = bus

    async def run_messages(
        self, run_id: UUID, after: int | None = None, *, heartbeat_s: float | None = None
    ) -> AsyncIterator[Item]:
        """The run's messages until it has finished; None is a heartbeat (nothing new).

        Raises RunNotFoundError before the first message for an unknown run.
        """
        run = await self._store.get_run(run_id)
        resync = after is None
        while True:
            snapshot_seq: int | None = None
            if resync:
                sub = self._subscribe_run(run, None)
                if sub is not None and sub.channel_finished:
                    # A finished run in memory: its snapshot, then its run.finished replayed.
                    sub = self._subscribe_run(run, sub.start_seq - 1)
                    assert sub is not None
                    snapshot_seq = sub.start_seq - 1
                elif sub is not None:
                    snapshot_seq = sub.start_seq
            else:
                sub = self._subscribe_run(run, after)
            if sub is None:  # finished, and its events are no longer in memory
                if resync or after is None or after < run.event_seq:
                    yield await self._run_snapshot(run_id, max(0, run.event_seq - 1))
                    run = await self._store.get_run(run_id)
                    yield run_finished(run, run.event_seq)
                return
            with sub:
                if snapshot_seq is not None:
                    yield await self._run_snapshot(run_id, snapshot_seq)
                try:
                    async for message in _drain(sub, heartbeat_s):
                        yield message
                    return
                except LaggedError:
                    yield Event(Lagged(), run_id, sub.last_seq)
                    resync = True
                    run = await self._store.get_run(run_id)

    def _subscribe_run(self, run: Run, after: int | None) -> Subscription | None:
        sub = self._bus.subscribe_run(run.id, after)
        if sub is None and not run.status.finished:
            # Not started here yet (pending): open its channel so its events reach us.
            self._bus.open_run(run.id)
            sub = self._bus.subscribe_run(run.id, after)
        return sub

    async def _run_snapshot(self, run_id: UUID, seq: int) -> Event:
        run = await self._store.get_run(run_id)
        nodes = await self._store.list_node_runs(run_id)
        return Event(RunSnapshot(run.to_json(), [n.to_json() for n in nodes]), run_id, seq)

    async def workflow_messages(
        self,
        workflow_id: UUID,
        after: int | None = None,
        *,
        heartbeat_s: float | None = None,
        recent_runs: int = 20,
    ) -> AsyncIterator[Item]:
        """The workflow channel's messages, forever; None is a heartbeat."""
        await self._store.get_workflow(workflow_id)  # raises WorkflowNotFoundError
        resync = after is None
        while True:
            sub = self._bus.subscribe_workflow(workflow_id, None if resync else after)
            if sub is None:
                resync = True
                continue
            with sub:
                if resync:
                    workflow = await self._store.get_workflow(workflow_id)
                    runs = await self._store.list_runs(
                        limit=recent_runs, before=None, workflow_id=workflow_id
                    )
                    snapshot = WorkflowSnapshot(workflow.to_json(), [r.to_json() for r in runs])
                    yield Event(snapshot, None, sub.start_seq)
                try:
                    async for message in _drain(sub, heartbeat_s):
                        yield message
                    return
                except LaggedError:
                    yield Event(Lagged(), None, sub.last_seq)
                    resync = True


async def _drain(sub: Subscription, heartbeat_s: float | None) -> AsyncIterator[Item]:
    if sub.going_away:
        raise GoingAwayError()
    while True:
        try:
            event = await sub.receive(heartbeat_s)
        except anyio.EndOfStream:
            return
        yield event


def run_finished(run: Run, seq: int) -> Event:
    """The run.finished of a stored run whose events are no longer in memory."""
    duration_ms = run.duration_ms(datetime.now(UTC))
    return Event(RunFinished(run.status, run.finished_at, duration_ms, run.error), run.id, seq)
