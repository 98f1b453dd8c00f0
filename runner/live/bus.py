"""The in-process event bus: each run's events with a run-scoped `seq`, replayable while the
run is in memory, delivered to subscribers through bounded buffers.

Publishing never blocks: a subscriber whose buffer is full is cut off and told it lagged
(it re-syncs from a snapshot), so a slow websocket client can never slow a run.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import anyio
import orjson

SUBSCRIBER_BUFFER = 256
# Finished runs keep their events for late reconnects, up to this many runs.
# Finished runs keep their events for a late reconnect while they are among the most recent
# ones AND the events kept stay under a cap: a long-lived process must not hold (and have its
# garbage collector walk) the events of thousands of past runs. Older ones re-sync from
# stored state, which is as correct, if less fine-grained.
FINISHED_RUNS_KEPT = 200
FINISHED_EVENTS_KEPT = 20_000
WORKFLOW_EVENTS_KEPT = 1000
WORKFLOW_CHANNELS_KEPT = 1000
# node.log is for the run's own channel; the workflow channel carries status changes.
WORKFLOW_SKIPPED_TYPES = frozenset({"node.log", "run.progress"})


# Outputs and log data larger than this travel as a truncated preview; GET the node for all.
PREVIEW_BYTES = 4096


def bounded(name: str, value: Any, limit: int = PREVIEW_BYTES) -> dict[str, Any]:
    """{name: value} when its JSON is small, else {name_preview: its first bytes of JSON,
    name_truncated: true}: events stay small whatever a node outputs."""
    if value is None or isinstance(value, bool | int | float):
        return {name: value}
    text = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
    if len(text) <= limit:
        return {name: value}
    return {
        f"{name}_preview": text[:limit].decode(errors="ignore"),
        f"{name}_truncated": True,
    }


@dataclass(frozen=True, slots=True)
class Event:
    """One published event."""

    type: str
    run_id: UUID | None
    seq: int
    ts: datetime
    data: dict[str, Any] = field(default_factory=dict)
    # Its JSON, made once however many subscribers send it.
    _text: list[str] = field(default_factory=list, repr=False, compare=False)

    def text(self) -> str:
        """The event as a JSON text message (encoded once, then shared)."""
        if not self._text:
            self._text.append(orjson.dumps(self.to_json()).decode())
        return self._text[0]

    def to_json(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "run_id": None if self.run_id is None else str(self.run_id),
            "seq": self.seq,
            "ts": self.ts.isoformat(),
            **self.data,
        }


class Lagged(Exception):
    """The subscriber fell behind and was cut off; re-sync from a snapshot."""


class GoingAway(Exception):
    """The server is shutting down; reconnect to another (or the restarted) one."""


class Subscription:
    """A subscriber's bounded queue of events.

    `receive` waits on a wake-up signal, never on the item hand-over itself, so a timeout
    (a heartbeat) can never lose an event.
    """

    def __init__(self, channel: _Channel, limit: int) -> None:
        self._channel = channel
        self._limit = limit
        self._queue: deque[Event] = deque()
        self._wakeup = anyio.Event()
        self._ended = False
        self.lagged = False
        self.going_away = False
        self.start_seq = channel.seq
        self.channel_finished = channel.finished
        self.last_seq = 0

    def offer(self, event: Event) -> None:
        """Deliver without waiting; a full queue cuts the subscriber off as lagged."""
        if self._ended:
            return
        if len(self._queue) >= self._limit:
            self.lagged = True
            self.end()
            return
        self._queue.append(event)
        self._wakeup.set()

    def end(self) -> None:
        """No more events will be offered (the run finished, lag, or unsubscribed)."""
        self._ended = True
        self._channel.subscribers.discard(self)
        self._wakeup.set()

    async def receive(self, idle_s: float | None = None) -> Event | None:
        """The next event; None after `idle_s` seconds without one (a heartbeat's cue).

        Raises EndOfStream once the channel has ended and every event was received, and
        Lagged instead when the subscriber was cut off for falling behind.
        """
        while not self._queue:
            if self._ended:
                if self.going_away:
                    raise GoingAway()
                if self.lagged:
                    raise Lagged()
                raise anyio.EndOfStream()
            self._wakeup = anyio.Event()
            with anyio.move_on_after(idle_s) as scope:
                await self._wakeup.wait()
            if scope.cancelled_caught:
                return None
        event = self._queue.popleft()
        self.last_seq = event.seq
        return event

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.end()


@dataclass(eq=False)
class _Channel:
    seq: int = 0
    log: deque[Event] = field(default_factory=deque)
    subscribers: set[Subscription] = field(default_factory=set)
    finished: bool = False
    first_seq: int = 1

    def replayable_after(self, after: int) -> bool:
        return after >= self.first_seq - 1

    def subscribe(self, after: int | None, limit: int) -> Subscription:
        sub = Subscription(self, limit)
        if after is not None:
            for event in self.log:
                if event.seq > after:
                    sub.offer(event)
        if self.finished:
            sub.end()
        elif not sub.lagged:
            self.subscribers.add(sub)
        return sub

    def publish(self, event: Event) -> None:
        self.log.append(event)
        for sub in list(self.subscribers):
            sub.offer(event)


class EventBus:
    """Per-run and per-workflow channels of events."""

    def __init__(self, *, subscriber_buffer: int = SUBSCRIBER_BUFFER) -> None:
        self._buffer = subscriber_buffer
        self._runs: dict[UUID, _Channel] = {}
        # Finished runs still in memory, oldest first, with how many events each holds.
        self._finished: OrderedDict[UUID, int] = OrderedDict()
        self._finished_events = 0
        self._workflows: OrderedDict[UUID, _Channel] = OrderedDict()
        self._run_workflow: dict[UUID, UUID] = {}
        self._closed = False

    # -- runs ------------------------------------------------------------------------------

    def run_seq(self, run_id: UUID) -> int | None:
        """The run's last seq, or None when its events are not in memory."""
        channel = self._runs.get(run_id)
        return None if channel is None else channel.seq

    def publish(
        self, run_id: UUID, workflow_id: UUID, type: str, data: dict[str, Any] | None = None
    ) -> Event:
        """Publish a run event (sync, never blocks); returns it with its seq."""
        channel = self._runs.get(run_id)
        if channel is None:
            channel = self._runs[run_id] = _Channel()
        self._run_workflow[run_id] = workflow_id
        channel.seq += 1
        event = Event(type, run_id, channel.seq, datetime.now(UTC), data or {})
        channel.publish(event)
        if type not in WORKFLOW_SKIPPED_TYPES:
            self._forward(workflow_id, event)
        if type == "run.finished":
            self._finish(run_id, channel)
        return event

    def subscribe_run(self, run_id: UUID, after: int | None = None) -> Subscription | None:
        """Events of the run after `after` (all kept ones when None, none if after < 0).

        None when the run's events are not in memory, or `after` is older than what is kept:
        the caller then re-syncs from stored state.
        """
        channel = self._runs.get(run_id)
        if channel is None:
            return None
        if after is not None and not channel.replayable_after(after):
            return None
        return self._refuse_if_closed(channel.subscribe(after, self._buffer))

    def run_created(self, run_id: UUID, workflow_id: UUID, run: dict[str, Any]) -> None:
        """A run was stored: open its channel and tell the workflow channel (run.created)."""
        self.open_run(run_id, workflow_id)
        created = Event("run.created", run_id, 0, datetime.now(UTC), {})
        data = {
            "status": run["status"],
            "trigger_type": run["trigger_type"],
            "created_at": run["created_at"],
        }
        self._forward(workflow_id, Event(created.type, run_id, 0, created.ts, data))

    def open_run(self, run_id: UUID, workflow_id: UUID) -> None:
        """Make a run's channel exist before its first event, so subscribers can wait on it."""
        if run_id not in self._runs:
            self._runs[run_id] = _Channel()
            self._run_workflow[run_id] = workflow_id

    def _finish(self, run_id: UUID, channel: _Channel) -> None:
        channel.finished = True
        for sub in list(channel.subscribers):
            sub.end()
        channel.subscribers.clear()
        self._finished[run_id] = len(channel.log)
        self._finished_events += len(channel.log)
        while self._finished and (
            len(self._finished) > FINISHED_RUNS_KEPT or self._finished_events > FINISHED_EVENTS_KEPT
        ):
            old, events = self._finished.popitem(last=False)
            self._finished_events -= events
            self._runs.pop(old, None)
            self._run_workflow.pop(old, None)

    def close_all(self) -> None:
        """Shutting down: every subscriber is told the server is going away."""
        self._closed = True
        for channel in [*self._runs.values(), *self._workflows.values()]:
            for sub in list(channel.subscribers):
                sub.going_away = True
                sub.end()

    @property
    def closed(self) -> bool:
        return self._closed

    def forget_run(self, run_id: UUID) -> None:
        """Drop a run's events (it will be re-read from storage if asked for)."""
        channel = self._runs.pop(run_id, None)
        self._run_workflow.pop(run_id, None)
        self._finished_events -= self._finished.pop(run_id, 0)
        if channel is not None:
            for sub in list(channel.subscribers):
                sub.end()

    # -- workflows -------------------------------------------------------------------------

    def publish_workflow(self, workflow_id: UUID, type: str, data: dict[str, Any]) -> None:
        """An event about the workflow itself (workflow.updated)."""
        channel = self._workflows.get(workflow_id)
        if channel is None:
            return
        channel.seq += 1
        self._keep(channel, Event(type, None, channel.seq, datetime.now(UTC), data))

    def _forward(self, workflow_id: UUID, event: Event) -> None:
        channel = self._workflows.get(workflow_id)
        if channel is None:
            return
        channel.seq += 1
        forwarded = Event(
            event.type,
            event.run_id,
            channel.seq,
            event.ts,
            {**event.data, "run_seq": event.seq, "workflow_id": str(workflow_id)},
        )
        self._keep(channel, forwarded)

    def _keep(self, channel: _Channel, event: Event) -> None:
        channel.publish(event)
        while len(channel.log) > WORKFLOW_EVENTS_KEPT:
            channel.log.popleft()
            channel.first_seq += 1

    def workflow_seq(self, workflow_id: UUID) -> int:
        """The workflow channel's last seq, creating the channel (so it starts recording)."""
        return self._workflow_channel(workflow_id).seq

    def subscribe_workflow(
        self, workflow_id: UUID, after: int | None = None
    ) -> Subscription | None:
        """Events of the workflow channel after `after`; None when they are no longer kept."""
        channel = self._workflow_channel(workflow_id)
        if after is not None and (after > channel.seq or not channel.replayable_after(after)):
            return None
        return self._refuse_if_closed(channel.subscribe(after, self._buffer))

    def _refuse_if_closed(self, sub: Subscription) -> Subscription:
        if self._closed:
            sub.going_away = True
            sub.end()
        return sub

    def _workflow_channel(self, workflow_id: UUID) -> _Channel:
        channel = self._workflows.get(workflow_id)
        if channel is None:
            channel = self._workflows[workflow_id] = _Channel()
            while len(self._workflows) > WORKFLOW_CHANNELS_KEPT:
                self._evict_idle_workflow()
        else:
            self._workflows.move_to_end(workflow_id)
        return channel

    def _evict_idle_workflow(self) -> None:
        for workflow_id, channel in self._workflows.items():
            if not channel.subscribers:
                del self._workflows[workflow_id]
                return
        self._workflows.popitem(last=False)
