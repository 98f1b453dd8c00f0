"""The NOTIFY side of the wake-ups between processes: sent after the commits they tell of,
from a connection of their own, off the runs' critical path.

A NOTIFY inside the writer's commit cost every commit 40 to 600 µs here (NOTIFY serialises the
commits of notifying transactions behind a global lock and grows a queue that every
listener must read). A wake-up carries nothing that a crash could undo (it only says where
to look, after the data is committed), so it is sent afterwards: whatever committed while
one NOTIFY was on its way goes in the next, and the NOTIFY's own commit does not wait for
the disk.
"""

from __future__ import annotations

import contextlib

import anyio
import anyio.abc
import structlog

from runner.store import notices
from runner.store.db import TRANSIENT_ERRORS, Connection, Database

log = structlog.get_logger(__name__)

RETRY_MAX_DELAY_S = 2.0
# How often an idle notifier looks whether other processes listen (it sends nothing while
# none does: one process alone pays nothing for wake-ups; a process that starts listening
# says so at once, see listener.py).
OTHERS_CHECK_S = 1.0


class Notifier:
    """Queues notices (`tell`, never blocks) and sends them in bursts (`serve`)."""

    def __init__(self, db: Database, *, origin: str) -> None:
        self._db = db
        self.origin = origin
        self._queued: list[notices.Notice] = []
        self._wakeup = anyio.Event()
        self._conn: Connection | None = None
        # Whether another process listens, and whether one follows runs (as last seen).
        self._listen = True
        self._follow = True
        self._checked_at = -OTHERS_CHECK_S

    def joined(self) -> None:
        """Another process started listening: send from now on."""
        self._listen = True

    def following(self) -> None:
        """Another process started following runs: send event wake-ups from now on."""
        self._listen = self._follow = True

    @property
    def wanted(self) -> bool:
        """Whether another process follows runs (as last seen): event wake-ups are sent."""
        return self._follow

    def tell(self, items: list[notices.Notice]) -> None:
        """Send these soon, those that another process needs."""
        needed = [n for n in items if (self._follow if notices.for_followers(n) else self._listen)]
        if needed:
            self._queued.extend(needed)
            self._wakeup.set()

    async def serve(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        task_status.started()
        try:
            while True:
                with anyio.move_on_after(OTHERS_CHECK_S):
                    await self._wakeup.wait()
                await self._look_for_others()
                self._wakeup = anyio.Event()
                items, self._queued = self._queued, []
                if items:
                    await self._send(notices.payloads(self.origin, items))
        finally:
            if self._conn is not None:
                with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
                    await self._conn.close()

    async def _connection(self) -> Connection:
        if self._conn is None or self._conn.is_closed():
            self._conn = await self._db.dedicated(synchronous_commit="off")
        return self._conn

    async def _look_for_others(self) -> None:
        """Whether another process listens, and follows runs (a look each OTHERS_CHECK_S;
        a process that starts either says so at once)."""
        if anyio.current_time() - self._checked_at < OTHERS_CHECK_S:
            return
        try:
            row = await (await self._connection()).fetch_one("other_listeners", self.origin)
        except TRANSIENT_ERRORS:
            self._conn = None
            self._listen = self._follow = True  # unknown: keep telling
            return
        assert row is not None
        self._listen, self._follow = bool(row["listening"]), bool(row["following"])
        self._checked_at = anyio.current_time()

    async def _send(self, payloads: list[str]) -> None:
        delay = 0.05
        while True:
            try:
                await (await self._connection()).execute("notify", payloads)
                return
            except TRANSIENT_ERRORS as exc:
                self._conn = None
                # Listeners look again at everything they follow once they reconnect.
                log.warning("notify_retrying", error=repr(exc), delay_s=delay)
                await anyio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_DELAY_S)
