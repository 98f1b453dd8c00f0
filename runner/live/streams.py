"""Live message streams for clients (websocket or SSE): a snapshot, then events.

Rules a client can rely on, whichever process it talks to: every message has `type`,
`run_id`, `seq`, `ts`; a snapshot is exactly the state that the events up to its `seq`
describe, and only events after it follow; a client that lagged gets `lagged` and then a
fresh snapshot; reconnecting with `after=SEQ` replays what followed SEQ from the run's
durable log, or re-syncs with a snapshot when those events were pruned.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, Protocol
from uuid import UUID

import anyio

from runner.live.bus import EventBus, GoingAwayError, LaggedError, Subscription
from runner.live.events import Event, Lagged, RunFinished, RunSnapshot, WorkflowSnapshot
from runner.models import Run, Workflow
from runner.records import RunSnapshotRows

# A stream yields events (published ones are shared by every subscriber and encoded once;
# snapshots and `lagged` are made for it), or None (nothing new: a heartbeat's cue).
Item = Event | None


class LiveSource(Protocol):
    """The reads streams make (the Store has them): live/ knows nothing of store/."""

    async def get_run(self, run_id: UUID) -> Run: ...

    async def run_snapshot(self, run_id: UUID) -> RunSnapshotRows: ...

    async def run_events(self, run_id: UUID, *, after: int) -> list[dict[str, Any]]: ...

    async def last_event_seq(self, run_id: UUID) -> int: ...

    async def get_workflow(self, workflow_id: UUID) -> Workflow: ...

    async def list_runs(
        self, *, limit: int, before: UUID | None, workflow_id: UUID | None = None
    ) -> list[Run]: ...


class LiveStreams:
    """Builds the message streams of a run and of a workflow."""

    def __init__(self, store: LiveSource, bus: EventBus) -> None:
        self._store = store
        self._bus = bus

    async def run_messages(
        self, run_id: UUID, after: int | None = None, *, heartbeat_s: float | None = None
    ) -> AsyncIterator[Item]:
        """The run's messages until it has finished; None is a heartbeat (nothing new).

        Events come from the run's durable log, then live from the bus (published once
        committed, by this process or read from the log when another one wrote them); a
        gap between the two is read from the log, so none is missed or repeated.
        Raises RunNotFoundError before the first message for an unknown run.
        """
        run = await self._store.get_run(run_id)
        resync = after is None
        last = after or 0
        while True:
            # Subscribed before reading the log: whatever commits after the read arrives.
            with self._bus.subscribe_run(run_id, run.workflow_id) as sub:
                if resync:
                    snapshot = await self._store.run_snapshot(run_id)
                    if snapshot.run.status.finished:
                        async for message in self._finished(snapshot):
                            yield message
                        return
                    yield _snapshot_event(snapshot, snapshot.seq)
                    last = snapshot.seq
                logged = await self._store.run_events(run_id, after=last)
                if not logged and not resync:
                    state = await self._after_nothing_logged(run_id, last)
                    if state == "finished":
                        return
                    if state == "resync":
                        resync = True
                        continue
                for data in logged:
                    event = Event.from_json(data)
                    yield event
                    last = event.seq
                    if event.type == RunFinished.TYPE:
                        return
                try:
                    async for message in _drain(sub, heartbeat_s):
                        if message is None:
                            yield None
                            continue
                        if message.seq <= last:
                            continue  # read from the log already
                        if message.seq > last + 1:
                            for data in await self._store.run_events(run_id, after=last):
                                if data["seq"] >= message.seq:
                                    break
                                yield Event.from_json(data)
                        yield message
                        last = message.seq
                        if message.type == RunFinished.TYPE:
                            return
                    return
                except LaggedError:
                    yield Event(Lagged(), run_id, last)
                    resync = True

    async def _after_nothing_logged(self, run_id: UUID, after: int) -> str:
        """Nothing logged after `after`: "wait" for more, the run has "finished" (nothing
        follows), or "resync" (`after` is unknown, or its events were pruned)."""
        run = await self._store.get_run(run_id)
        if run.status.finished:
            return "finished" if after >= run.event_seq else "resync"
        return "resync" if after > await self._store.last_event_seq(run_id) else "wait"

    async def _finished(self, snapshot: RunSnapshotRows) -> AsyncIterator[Item]:
        """A finished run: its final state, then its run.finished (from the log, or made
        from the run when its events were pruned)."""
        run = snapshot.run
        seq = snapshot.seq or run.event_seq
        yield _snapshot_event(snapshot, max(0, seq - 1))
        logged = await self._store.run_events(run.id, after=max(0, seq - 1))
        if logged:
            yield Event.from_json(logged[-1])
        else:
            yield run_finished(run, seq)

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


def _snapshot_event(snapshot: RunSnapshotRows, seq: int) -> Event:
    body = RunSnapshot(snapshot.run.to_json(), [n.to_json() for n in snapshot.nodes])
    return Event(body, snapshot.run.id, seq)


def run_finished(run: Run, seq: int) -> Event:
    """The run.finished of a stored run whose logged events were pruned."""
    duration_ms = run.duration_ms(datetime.now(UTC))
    return Event(RunFinished(run.status, run.finished_at, duration_ms, run.error), run.id, seq)
