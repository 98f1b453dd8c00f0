"""The in-process event bus: each run's committed events, delivered to this process's
subscribers through bounded buffers; and each workflow's channel.

Publishing never blocks: a subscriber whose buffer is full is cut off and told it lagged
(it re-syncs from a snapshot), so a slow websocket client can never slow a run. A run's
events arrive here with their seq assigned (by the run's Journal); the workflow channel
numbers its own copies (its seqs are this process's: a reconnect elsewhere re-syncs).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from uuid import UUID

import anyio

from runner.live.events import WORKFLOW_SKIPPED, Event, EventBody, RunCreated, RunFinished

SUBSCRIBER_BUFFER = 256
# Runs whose last seq is remembered, the most recently active ones (a process must not
# remember every run it ever saw).
RUNS_TRACKED = 10_000
WORKFLOW_EVENTS_KEPT = 1000
WORKFLOW_CHANNELS_KEPT = 1000


class LaggedError(Exception):
    """The subscriber fell behind and was cut off; re-sync from a snapshot."""


class GoingAwayError(Exception):
    """The server is shutting down; reconnect to another (or the restarted) one."""


class Subscription:
    """A subscriber's bounded queue of events.

    `receive` waits on a wake-up signal, never on the item hand-over itself, so a timeout
    (a heartbeat) can never lose an event.
    """

    def __init__(
        self, channel: _Channel, limit: int, release: Callable[[], None] | None = None
    ) -> None:
        self._channel = channel
        self._release = release
        self._limit = limit
        self._queue: deque[Event] = deque()
        self._wakeup = anyio.Event()
        self._ended = False
        self.lagged = False
        self.going_away = False
        self.start_seq = channel.seq
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
        if self._release is not None:
            self._release()

    async def receive(self, idle_s: float | None = None) -> Event | None:
        """The next event; None after `idle_s` seconds without one (a heartbeat's cue).

        Raises EndOfStream once the channel has ended and every event was received, and
        LaggedError instead when the subscriber was cut off for falling behind.
        """
        while not self._queue:
            if self._ended:
                if self.going_away:
                    raise GoingAwayError()
                if self.lagged:
                    raise LaggedError()
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
    first_seq: int = 1
    workflow_id: UUID | None = None  # a run channel's workflow

    def replayable_after(self, after: int) -> bool:
        return after >= self.first_seq - 1

    def subscribe(self, after: int | None, limit: int) -> Subscription:
        sub = Subscription(self, limit)
        if after is not None:
            for event in self.log:
                if event.seq > after:
                    sub.offer(event)
        if not sub.lagged:
            self.subscribers.add(sub)
        return sub

    def publish(self, event: Event) -> None:
        self.seq = event.seq
        self.log.append(event)
        for sub in list(self.subscribers):
            sub.offer(event)


class EventBus:
    """Per-run and per-workflow channels of events.

    A run's events reach the bus once committed (from this process's writer, or read from
    the log when another process wrote them), each once: an event at or below the run's
    last seq seen here is dropped. A run channel holds no events of its own, only its live
    subscribers: replays come from the durable log (see runner/live/streams.py).
    """

    def __init__(self, *, subscriber_buffer: int = SUBSCRIBER_BUFFER) -> None:
        self._buffer = subscriber_buffer
        self._runs: dict[UUID, _Channel] = {}
        # The last seq seen of each unfinished run, oldest entry first.
        self._last: OrderedDict[UUID, int] = OrderedDict()
        self._workflows: OrderedDict[UUID, _Channel] = OrderedDict()
        self._closed = False

    # -- runs ------------------------------------------------------------------------------

    def last_seq(self, run_id: UUID) -> int | None:
        """The seq of the run's last event seen here, or None when none is known."""
        return self._last.get(run_id)

    def publish(self, event: Event, workflow_id: UUID) -> None:
        """Deliver a run's committed event (its seq assigned already); never blocks."""
        run_id = event.run_id
        assert run_id is not None
        if event.seq <= self._last.get(run_id, 0):
            return  # seen already (told by this process's writer and by the log)
        finished = event.type == RunFinished.TYPE
        # Finished runs are remembered too: a late read of their log repeats nothing.
        self._last[run_id] = event.seq
        self._last.move_to_end(run_id)
        while len(self._last) > RUNS_TRACKED:
            self._last.popitem(last=False)
        channel = self._runs.get(run_id)
        if channel is not None:
            for sub in list(channel.subscribers):
                sub.offer(event)
            if finished:
                for sub in list(channel.subscribers):
                    sub.end()
                self._runs.pop(run_id, None)
        if event.type not in WORKFLOW_SKIPPED:
            self._forward(workflow_id, event)

    def subscribe_run(self, run_id: UUID, workflow_id: UUID) -> Subscription:
        """The run's events published from now on (the caller replays earlier ones from
        the log)."""
        channel = self._runs.get(run_id)
        if channel is None:
            channel = self._runs[run_id] = _Channel(workflow_id=workflow_id)
        sub = Subscription(channel, self._buffer, lambda: self._unsubscribed(run_id))
        channel.subscribers.add(sub)
        return self._refuse_if_closed(sub)

    def watched(self, run_id: UUID, workflow_id: UUID) -> bool:
        """True when a subscriber here wants the run's events (on its own channel or its
        workflow's)."""
        channel = self._runs.get(run_id)
        if channel is not None and channel.subscribers:
            return True
        workflow = self._workflows.get(workflow_id)
        return workflow is not None and bool(workflow.subscribers)

    def watched_runs(self) -> dict[UUID, UUID]:
        """The runs that subscribers here follow, with their workflows."""
        return {
            run_id: channel.workflow_id
            for run_id, channel in self._runs.items()
            if channel.subscribers and channel.workflow_id is not None
        }

    def has_subscribers(self) -> bool:
        """Whether any run or workflow channel here has a subscriber."""
        return any(c.subscribers for c in self._runs.values()) or any(
            c.subscribers for c in self._workflows.values()
        )

    def subscriber_counts(self) -> tuple[int, int]:
        """How many subscribers follow a run here, and how many a workflow (for metrics)."""
        runs = sum(len(c.subscribers) for c in self._runs.values())
        return runs, sum(len(c.subscribers) for c in self._workflows.values())

    def watches_workflow(self, workflow_id: UUID) -> bool:
        channel = self._workflows.get(workflow_id)
        return channel is not None and bool(channel.subscribers)

    def _unsubscribed(self, run_id: UUID) -> None:
        """Forget a run channel that has no subscribers left."""
        channel = self._runs.get(run_id)
        if channel is not None and not channel.subscribers:
            del self._runs[run_id]

    def run_created(self, run_id: UUID, workflow_id: UUID, created: RunCreated) -> None:
        """A run was stored: tell the workflow channel (run.created)."""
        self._forward(workflow_id, Event(created, run_id, 0))

    def lag_workflow_subscribers(self) -> None:
        """Cut every workflow channel's subscribers off as lagged (they re-sync from a
        snapshot): events they should have had were missed."""
        for channel in self._workflows.values():
            for sub in list(channel.subscribers):
                sub.lagged = True
                sub.end()

    def close_all(self) -> None:
        """Shutting down: every subscriber is told the server is going away."""
        self._closed = True
        for channel in [*self._runs.values(), *self._workflows.values()]:
            for sub in list(channel.subscribers):
                sub.going_away = True
                sub.end()

    # -- workflows -------------------------------------------------------------------------

    def publish_workflow(self, workflow_id: UUID, body: EventBody) -> None:
        """An event about the workflow itself (workflow.updated)."""
        channel = self._workflows.get(workflow_id)
        if channel is None:
            return
        self._keep(channel, Event(body, None, channel.seq + 1))

    def _forward(self, workflow_id: UUID, event: Event) -> None:
        channel = self._workflows.get(workflow_id)
        if channel is None:
            return
        copy = replace(event, seq=channel.seq + 1, workflow_id=workflow_id, run_seq=event.seq)
        self._keep(channel, copy)

    def _keep(self, channel: _Channel, event: Event) -> None:
        channel.publish(event)
        while len(channel.log) > WORKFLOW_EVENTS_KEPT:
            channel.log.popleft()
            channel.first_seq += 1

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
