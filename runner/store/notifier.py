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
from runner.store.listener import listener_name

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
        self._others = True
        self._checked_at = -OTHERS_CHECK_S

    def joined(self) -> None:
        """Another process started listening: send from now on."""
        self._others = True
        self._checked_at = anyio.current_time()

    @property
    def wanted(self) -> bool:
        """Whether another process listens (as last seen)."""
        return self._others

    def tell(self, items: list[notices.Notice]) -> None:
        """Send these soon, if another process listens."""
        if items and self._others:
            self._queued.extend(items)
            self._wakeup.set()

    async def serve(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        task_status.started()
        try:
            while True:
                with anyio.move_on_after(OTHERS_CHECK_S) as timer:
                    await self._wakeup.wait()
                if timer.cancelled_caught:
                    await self._look_for_others()
                    continue
                self._wakeup = anyio.Event()
                items, self._queued = self._queued, []
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
        """Whether another process listens (a check each OTHERS_CHECK_S while idle)."""
        if anyio.current_time() - self._checked_at < OTHERS_CHECK_S:
            return
        try:
            name = listener_name(self.origin)
            others = await (await self._connection()).fetch_val("other_listeners", name)
        except TRANSIENT_ERRORS:
            self._conn = None
            self._others = True  # unknown: keep telling
            return
        self._others = bool(others)
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
