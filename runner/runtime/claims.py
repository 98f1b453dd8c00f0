"""Claims: this process takes pending runs while it has room.

A process holds at most WEFT_MAX_RUNS runs (executing, or waiting here for their workflow's
slot). A run started while there is room is leased to the process that stored it; any
other run waits in PostgreSQL, pending, and the first process with room claims it
(claim_pending_runs: oldest first, in creation order per workflow, within every workflow's
max_concurrency across all processes). Claims are woken by the relay (a run was created, a
run ended somewhere) and by this process's own runs ending, and polled now and then in case
a wake-up was lost. A burst of runs therefore costs rows, not memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from uuid import UUID

import anyio
import structlog

from runner.engine.messages import StartRun
from runner.runtime.mailboxes import Mailboxes
from runner.store.protocol import Store

log = structlog.get_logger(__name__)

# Runs claimed per statement at most; and how often claims look without a wake-up.
CLAIM_BATCH = 100
POLL_S = 2.0


class Claims:
    """Claims waiting runs for this process while it has room; `keep` runs forever."""

    def __init__(
        self,
        store: Store,
        mailboxes: Mailboxes,
        *,
        owner: UUID,
        max_runs: int,
        lease_s: float,
        accepting: Callable[[], bool],
        poll_s: float = POLL_S,
    ) -> None:
        self._store = store
        self._mailboxes = mailboxes
        self._owner = owner
        self.max_runs = max_runs
        self._lease_s = lease_s
        self._accepting = accepting
        self._poll_s = poll_s
        self._wakeup = anyio.Event()
        self._reserved = 0
        # False once a look found nothing claimable: until something may have changed that,
        # a run ending here costs no query.
        self._maybe_waiting = True

    def room(self) -> int:
        """How many more runs this process may take."""
        stats = self._mailboxes.statistics()
        # Runs on their way into a supervisor (in runs_queued), or being stored for this
        # process, count too.
        held = stats.runs_in_flight + stats.runs_queued + self._reserved
        return self.max_runs - held

    @contextmanager
    def reserve(self, wanted: int) -> Iterator[int]:
        """Room for up to `wanted` runs that the caller stores and hands over itself (how
        many it may take), held from the others until the block ends."""
        taken = max(0, min(wanted, self.room()))
        self._reserved += taken
        try:
            yield taken
        finally:
            self._reserved -= taken

    def wake(self, *, waiting: bool = False) -> None:
        """Look for waiting runs soon: when `waiting` (a run may have become claimable:
        stored unleased, or a slot of a limit freed), or when the last look found some
        (this process's room grew)."""
        if waiting:
            self._maybe_waiting = True
        if self._maybe_waiting:
            self._wakeup.set()

    async def keep(self) -> None:
        """Claim whenever woken (or every poll_s); runs forever."""
        while True:
            with anyio.move_on_after(self._poll_s) as timer:
                await self._wakeup.wait()
            if timer.cancelled_caught:
                self._maybe_waiting = True  # a wake-up may have been lost
            self._wakeup = anyio.Event()
            try:
                await self.claim()
            except Exception:
                log.exception("claim_failed")

    async def claim(self) -> int:
        """Claim waiting runs while there is room; how many were claimed."""
        claimed = 0
        while self._accepting() and (room := self.room()) > 0:
            asked = min(room, CLAIM_BATCH)
            runs = await self._store.claim_pending_runs(self._owner, self._lease_s, asked)
            if not self._accepting():
                break  # shutting down meanwhile: released with the others' leases
            for run in runs:
                await self._mailboxes.send(run.workflow_id, StartRun(run))
            claimed += len(runs)
            if len(runs) < asked:
                self._maybe_waiting = bool(runs)
                break
        return claimed
