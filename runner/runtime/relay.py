"""The Relay: what this process does when another one wakes it (runner/store/notices.py).

- A run's log grew: its new events are read from the log and published here, when a
  subscriber here follows the run or its workflow; a run that finished wakes its waiters.
- A run was created: the workflow channel here tells of it (run.created); processes with
  room look for pending runs to claim.
- A workflow changed: its supervisor here takes the new graph and limit, the webhook cache
  forgets it, and the workflow channel tells of it (workflow.updated).
- A cancel was asked: the supervisor here that holds the run cancels it.

Wake-ups arrive in bursts; each burst is handled at once, with one read of the log for every
run it concerns. After the listener (re)connects, what it may have missed is read again.
"""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID

import anyio
import structlog

from runner.engine.messages import CancelRun
from runner.errors import WeftError
from runner.live.bus import EventBus
from runner.live.events import Event, RunCreated
from runner.runtime.mailboxes import Mailboxes
from runner.runtime.waiters import RunWaiters
from runner.runtime.workflows import Workflows
from runner.store import notices
from runner.store.protocol import Store

log = structlog.get_logger(__name__)


class Relay:
    """Receives notices (from any task, without blocking) and acts on them in `serve`."""

    def __init__(
        self,
        store: Store,
        bus: EventBus,
        *,
        mailboxes: Mailboxes,
        waiters: RunWaiters,
        workflows: Workflows,
        on_room: Callable[[], None],
        on_joined: Callable[[], None] = lambda: None,
        on_following: Callable[[], None] = lambda: None,
        owner: UUID | None = None,
    ) -> None:
        self._owner = owner
        self._on_joined = on_joined
        self._on_following = on_following
        self._store = store
        self._bus = bus
        self._mailboxes = mailboxes
        self._waiters = waiters
        self._workflows = workflows
        self._on_room = on_room
        self._received: list[tuple[bool, list[notices.Notice]]] = []
        self._resync = False
        self._wakeup = anyio.Event()

    def received(self, own: bool, items: list[notices.Notice]) -> None:
        """Notices from one notification (`own`: this process sent it)."""
        self._received.append((own, items))
        self._wakeup.set()

    def follows(self) -> bool:
        """Whether anyone here follows runs: a subscriber (of a run or a workflow), or a
        caller waiting for a run's end."""
        return self._bus.has_subscribers() or self._waiters.any_remote()

    def connected(self) -> None:
        """The listener (re)connected: what was sent meanwhile is lost; look again."""
        self._resync = True
        self._wakeup.set()

    async def serve(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup = anyio.Event()
            received, self._received = self._received, []
            resync, self._resync = self._resync, False
            try:
                await self._handle(received, resync=resync)
            except Exception:  # a wake-up not acted on must not end the relay
                log.exception("relay_failed")

    async def _handle(
        self, received: list[tuple[bool, list[notices.Notice]]], *, resync: bool
    ) -> None:
        fetch: dict[UUID, tuple[UUID, int]] = {}
        created: list[tuple[UUID, UUID]] = []
        changed: set[UUID] = set()
        cancels: list[tuple[UUID, UUID]] = []
        room = resync
        for own, items in received:
            for notice in items:
                match notice:
                    case notices.EventsAppended(run_id, workflow_id, first, _last, finished):
                        if own:
                            continue
                        if finished:
                            if self._waiters.waiting(run_id):
                                self._waiters.run_finished(run_id)
                        if self._bus.watched(run_id, workflow_id):
                            # From what was seen here (a read may have gone past the notice).
                            known = self._bus.last_seq(run_id)
                            after = first - 1 if known is None else known
                            previous = fetch.get(run_id)
                            if previous is not None:
                                after = min(after, previous[1])
                            fetch[run_id] = (workflow_id, after)
                    case notices.RunCreated(run_id, workflow_id, waiting):
                        room = room or waiting
                        if not own and self._bus.watches_workflow(workflow_id):
                            created.append((run_id, workflow_id))
                    case notices.WorkflowChanged(workflow_id) if not own:
                        changed.add(workflow_id)
                    case notices.CancelRequested(run_id, workflow_id):
                        cancels.append((run_id, workflow_id))
                    case notices.RoomFreed():
                        room = True
                    case notices.Joined():
                        self._on_joined()
                    case notices.Following():
                        self._on_following()
        if resync:
            self._waiters.wake_all()
            # What workflow channels missed is not read back: their subscribers re-sync.
            self._bus.lag_workflow_subscribers()
            for run_id, workflow_id in self._bus.watched_runs().items():
                fetch.setdefault(run_id, (workflow_id, self._bus.last_seq(run_id) or 0))
        for run_id, workflow_id in created:
            await self._announce(run_id, workflow_id)
        if fetch:
            await self._publish_logged(fetch)
        for workflow_id in changed:
            await self._workflows.changed_elsewhere(workflow_id)
        for run_id, workflow_id in cancels:
            await self._cancel(run_id, workflow_id)
        if room:
            self._on_room()

    async def _announce(self, run_id: UUID, workflow_id: UUID) -> None:
        try:
            run = await self._store.get_run(run_id)
        except WeftError:
            return  # gone already
        created = RunCreated(str(run.status), run.trigger_type, run.created_at.isoformat())
        self._bus.run_created(run.id, workflow_id, created)

    async def _publish_logged(self, fetch: dict[UUID, tuple[UUID, int]]) -> None:
        found = await self._store.events_after({r: after for r, (_, after) in fetch.items()})
        for run_id, events in found:
            workflow_id = fetch[run_id][0]
            for data in events:
                self._bus.publish(Event.from_json(data), workflow_id)

    async def _cancel(self, run_id: UUID, workflow_id: UUID) -> None:
        if not self._mailboxes.has(workflow_id):
            return  # not here (a run claimed but not handed over yet: the lease upkeep)
        try:
            run = await self._store.get_run(run_id)
        except WeftError:
            return
        if run.lease_owner == self._owner or self._mailboxes.holds(workflow_id, run_id):
            # Through the inbox: after the run's StartRun, should that still be on its way.
            await self._mailboxes.send(workflow_id, CancelRun(run), start=False)
