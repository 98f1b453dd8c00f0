"""Leases: runs are leased to the process that executes them, and the lease is renewed while
they run. Unfinished runs whose lease lapsed (their process died) or was released (it shut
down) are claimed here and resumed; with several processes on one database each is claimed
by one of them (FOR UPDATE SKIP LOCKED). The same upkeep prunes old runs' event logs, and
old runs themselves when a run retention is set."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from uuid import UUID

import anyio
import structlog

from runner.engine.messages import StartRun
from runner.runtime.mailboxes import Mailboxes
from runner.store.protocol import Store

log = structlog.get_logger(__name__)

CLAIM_BATCH = 500
PRUNE_BATCH = 1000


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
        event_retention_s: float | None = None,
        run_retention_s: float | None = None,
        on_pruned: Callable[[int], None] = lambda _n: None,
        room: Callable[[], int] = lambda: CLAIM_BATCH,
    ) -> None:
        self._on_pruned = on_pruned
        self._room = room
        self._event_retention_s = event_retention_s
        self._run_retention_s = run_retention_s
        self._pruned_until = datetime(1970, 1, 1, tzinfo=UTC)
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
                if first:
                    # The runs of this instance's previous process are anybody's at once
                    # (this one takes what it has room for; renewing them would strand
                    # the rest).
                    await self._store.release_leases(self.owner)
                    first = False
                await self.resume_orphaned_runs()
                for run_id, workflow_id in await self._store.renew_leases(self.owner, self.lease_s):
                    # A cancel asked while this process's wake-ups were lost.
                    self._on_cancel_asked(run_id, workflow_id)
                await self.prune_events()
                await self.prune_runs()
            except Exception:
                log.exception("lease_upkeep_failed")
            await anyio.sleep(self.lease_s / 3)

    async def prune_events(self) -> None:
        """Forget the event logs of runs finished longer than the retention ago (a batch
        per call; their snapshot still answers for them)."""
        if self._event_retention_s is None:
            return
        cutoff = datetime.now(UTC) - timedelta(seconds=self._event_retention_s)
        cursor = await self._store.prune_events(
            cutoff=cutoff, limit=PRUNE_BATCH, cursor=self._pruned_until
        )
        if cursor is not None:
            self._pruned_until = cursor

    async def prune_runs(self) -> int:
        """Delete a batch of the runs finished longer than the run retention ago (oldest
        first); how many went. A backlog goes a batch per upkeep, never all in one
        statement that would hold its locks for long."""
        if not self._run_retention_s:
            return 0
        cutoff = datetime.now(UTC) - timedelta(seconds=self._run_retention_s)
        gone = await self._store.prune_runs(cutoff=cutoff, limit=PRUNE_BATCH)
        if gone:
            log.info("runs_pruned", runs=gone, finished_before=cutoff.isoformat())
            self._on_pruned(gone)
        return gone

    async def resume_orphaned_runs(self, *, include_own: bool = False) -> int:
        """Claim unfinished runs whose process is gone, as many as this process has room
        for (WEFT_MAX_RUNS), and hand them to supervisors."""
        limit = min(CLAIM_BATCH, self._room())
        if not self._accepting() or limit <= 0:
            return 0
        runs = await self._store.claim_orphaned_runs(
            self.owner, self.lease_s, limit, include_own=include_own
        )
        if not self._accepting():
            return 0  # shutting down meanwhile: released with the others' leases
        for run in runs:
            log.info("run_resuming", run_id=str(run.id), status=str(run.status))
            await self._mailboxes.send(run.workflow_id, StartRun(run, resume=True))
        return len(runs)

    async def release(self) -> None:
        """Let the next start of weft (this or another process) resume our runs at once."""
        await self._store.release_leases(self.owner)
