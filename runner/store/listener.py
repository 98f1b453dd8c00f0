"""The LISTEN side of the wake-ups between processes: one connection of its own, kept open,
handing each notification's notices to a callback.

Notifications sent while the connection was down are lost, so after every (re)connect the
callback is told to look again at everything it follows (`on_connected`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import anyio
import anyio.abc
import asyncpg
import structlog

from runner.store import notices
from runner.store.db import TRANSIENT_ERRORS

log = structlog.get_logger(__name__)

RECONNECT_FIRST_DELAY_S = 0.05
RECONNECT_MAX_DELAY_S = 2.0
# How often an idle connection is checked (a server that went away without a word).
CHECK_S = 5.0
# How often whether this process follows runs is looked at (and told when it changed).
ADVERTISE_S = 0.05
# How long other processes may take to notice a new listener (see notifier.OTHERS_CHECK_S),
# with a margin.
LOOK_AGAIN_S = 1.5


def listener_name(origin: str, *, following: bool = False) -> str:
    """The application_name of a process's listening connection: how the others know it
    is there, and whether it follows runs (runner/store/notifier.py)."""
    return f"weft-listener {origin}" + (" following" if following else "")


class Listener:
    """Listens on the `weft` channel; `serve` runs in the runtime's task group."""

    def __init__(self, dsn: str, *, origin: str, queries: dict[str, str]) -> None:
        self._dsn = dsn
        self._queries = queries  # the named queries (sql/queries)
        self._origin = origin
        self._own_prefix = f"{origin}|"
        self._on_notices: Callable[[bool, list[notices.Notice]], None] = lambda _o, _n: None
        self._on_connected: Callable[[], None] = lambda: None
        self._follows: Callable[[], bool] = lambda: True
        self._tg: anyio.abc.TaskGroup | None = None
        self._advertised = False

    def attach(
        self,
        on_notices: Callable[[bool, list[notices.Notice]], None],
        on_connected: Callable[[], None],
        follows: Callable[[], bool] = lambda: True,
    ) -> None:
        """Where notices go (`on_notices(sent by this process, notices)`), who looks again
        after a (re)connect, and whether anyone here follows runs (`follows()`: when not,
        the notices only followers need are skipped unread)."""
        self._on_notices = on_notices
        self._on_connected = on_connected
        self._follows = follows

    def _received(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        text = str(payload)
        if text.startswith(self._own_prefix):
            return  # this process acted on what it sent when it sent it
        _origin, items = notices.parse(text, events=self._follows())
        if items:
            self._on_notices(False, items)

    async def _advertise(self, conn: asyncpg.Connection) -> None:
        """Let the others see whether this process follows runs: they send event wake-ups
        only to processes that do (one that starts says so at once)."""
        following = self._follows()
        if following == self._advertised:
            return
        name = listener_name(self._origin, following=following)
        await conn.execute(self._queries["set_application_name"], name)
        self._advertised = following
        if following:
            told = notices.payloads(self._origin, [notices.Following()])[0]
            await conn.execute(self._queries["notify"], [told])
            # What the others committed before they heard it is read from the logs.
            self._recheck_after(0.3)
            self._recheck_after(1.0)

    def _recheck_after(self, delay_s: float) -> None:
        if self._tg is not None:
            self._tg.start_soon(self._recheck, delay_s)

    async def _recheck(self, delay_s: float) -> None:
        await anyio.sleep(delay_s)
        self._on_connected()

    async def serve(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        async with anyio.create_task_group() as tg:
            self._tg = tg
            await self._listen(task_status)

    async def _listen(self, task_status: anyio.abc.TaskStatus[None]) -> None:
        delay = RECONNECT_FIRST_DELAY_S
        started = False
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(
                    self._dsn, server_settings={"application_name": listener_name(self._origin)}
                )
                lost = anyio.Event()
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                await conn.add_listener(notices.CHANNEL, self._received)
                # Tell the others (they send nothing while nobody else listens).
                hello = notices.payloads(self._origin, [notices.Joined()])[0]
                await conn.execute(self._queries["notify"], [hello])
                self._advertised = False
                delay = RECONNECT_FIRST_DELAY_S
                self._on_connected()
                # Processes that looked for listeners before this one came wake it from
                # their next look on; what they committed meanwhile is read once more then.
                self._recheck_after(LOOK_AGAIN_S)
                if not started:
                    started = True
                    task_status.started()
                checked = anyio.current_time()
                while not lost.is_set():
                    with anyio.move_on_after(ADVERTISE_S):
                        await lost.wait()
                    if lost.is_set():
                        break
                    await self._advertise(conn)
                    if anyio.current_time() - checked > CHECK_S:
                        await conn.execute(self._queries["ping"])
                        checked = anyio.current_time()
            except TRANSIENT_ERRORS as exc:
                log.warning("listener_reconnecting", error=repr(exc), delay_s=delay)
            finally:
                if conn is not None and not conn.is_closed():
                    with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
                        await conn.close()
            if not started:
                started = True
                task_status.started()  # weft still starts; wake-ups follow once connected
            await anyio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX_DELAY_S)
