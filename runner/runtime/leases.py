"""Leases: runs are leased to the process that executes them, and the lease is renewed while
they run. Unfinished runs whose lease lapsed (their process died) or was released (it shut
down) are claimed here and resumed; with several processes on one database each is claimed
by one of them (FOR UPDATE SKIP LOCKED)."""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID

import anyio
import structlog

from runner.engine.messages import StartRun
from runner.runtime.mailboxes import Mailboxes
from runner.store.protocol import Store

log = structlog.get_logger(__name__)

CLAIM_BATCH = 500


class Leases:
    """Keeps this process's leases and resumes the runs nobody holds."""

    def __init__(
        self,
        store: Store,
        mailboxes: Mailboxes,
        *,
        owner: UUID,
        lease_s: float,
        accepting: Callable[[], bool],
        on_cancel_asked: Callable[[UUID, UUID], None] = lambda _r, _w: None,
    ) -> None:
        self._store = store
        self._on_cancel_asked = on_cancel_asked
        self._mailboxes = mailboxes
        self.owner = owner
        self.lease_s = lease_s
        self._accepting = accepting

    async def keep(self) -> None:
        """Renew this process's leases; claim and resume runs nobody holds. Runs forever."""
        first = True
        while True:
            try:
                # At start, also the runs of this instance's previous process.
                await self.resume_orphaned_runs(include_own=first)
                first = False
                for run_id, workflow_id in await self._store.renew_leases(self.owner, self.lease_s):
                    # A cancel asked while this process's wake-ups were lost.
                    self._on_cancel_asked(run_id, workflow_id)
            except Exception:
                log.exception("lease_upkeep_failed")
            await anyio.sleep(self.lease_s / 3)

    async def resume_orphaned_runs(self, *, include_own: bool = False) -> int:
        """Claim unfinished runs whose process is gone and hand them to supervisors."""
        if not self._accepting():
            return 0
        runs = await self._store.claim_orphaned_runs(
            self.owner, self.lease_s, CLAIM_BATCH, include_own=include_own
        )
        for run in runs:
            log.info("run_resuming", run_id=str(run.id), status=str(run.status))
            await self._mailboxes.send(run.workflow_id, StartRun(run, resume=True))
        return len(runs)

    async def release(self) -> None:
        """Let the next start of weft (this or another process) resume our runs at once."""
        await self._store.release_leases(self.owner)
