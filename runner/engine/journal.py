"""The Journal: every state transition of one run, each recorded in one method.

A transition is a write (queued for the Writer's next group commit, or awaited when later
work depends on it) and the typed event that reports it, with the run's next `seq`,
assigned here and nowhere else. The event rides in the same commit as the write (the run's
durable log) and reaches subscribers once that commit is done. The executor, node tasks
and the supervisor's fail and cancel paths all record through a Journal; none pairs a write
with an event by hand.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any
from uuid import UUID

import anyio
import orjson

from runner.engine.attempt import now
from runner.json_values import without_nul
from runner.live.bus import EventBus
from runner.live.events import (
    Event,
    NodeCancelled,
    NodeFailed,
    NodeInterrupted,
    NodeItemEnded,
    NodeLogged,
    NodeSkipped,
    NodeStarted,
    NodeSucceeded,
    RunEventBody,
    RunFinished,
    RunPaused,
    RunProgress,
    RunStarted,
)
from runner.models import CANCELLED_ERROR, NodeStatus, Run, RunStatus, duration_ms
from runner.records import LogRecord
from runner.secrets import Redactor
from runner.store.db import RawJson
from runner.store.protocol import ItemEnd, NodeEnd, NodeStart, RunEnd, RunWriter, Store

# Final writes after a cancellation still get this long, shielded.
FINAL_WRITE_GRACE_S = 5.0
MAX_MESSAGE_CHARS = 10_000


def _log_data(data: dict[str, Any]) -> dict[str, Any] | None:
    """A log line's data as JSON can hold it (anything else as its repr)."""
    if not data:
        return None
    try:
        encoded = orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:
        return {k: repr(v) for k, v in without_nul(data).items()}
    if b"\\u0000" in encoded:
        return dict(without_nul(data))
    return dict(orjson.loads(encoded))


class Journal:
    """Records one run's transitions: its rows through the Writer, its events on the bus."""

    def __init__(
        self, run: Run, *, writer: RunWriter, store: Store, events: EventBus, seq: int = 0
    ) -> None:
        self.run_id = run.id
        self.workflow_id = run.workflow_id
        self._writer = writer
        self._store = store
        self._events = events
        # The seq of the run's last event in its log (a resumed run goes on from there).
        self._seq = seq
        # The secret values this run read: masked in everything it records (rows, events).
        self.redactor = Redactor()

    def _json(self, encoded: str) -> str:
        return self.redactor.json(encoded) if self.redactor else encoded

    def masked(self, value: Any) -> Any:
        """A value as the run records it: the secrets it read shown as ***."""
        return self.redactor.value(value) if self.redactor else value

    @property
    def seq(self) -> int:
        """The seq of the last event recorded."""
        return self._seq

    def resume_from(self, seq: int) -> None:
        """Go on after the run's last logged event (a resumed run)."""
        self._seq = max(self._seq, seq)

    def _next_seq(self) -> int:
        return self._seq + 1

    def _publish(self, body: RunEventBody, seq: int | None = None) -> None:
        """Queue the event with the next commit (it reaches subscribers once committed)."""
        self._seq = seq or self._next_seq()
        self._writer.event(Event(body, self.run_id, self._seq), self.workflow_id)

    # -- the run ---------------------------------------------------------------------------

    def run_started(self, started_at: datetime) -> None:
        # Not awaited: a crash before it lands leaves a pending run, resumed the same way.
        self._writer.run_started(self.run_id, started_at)
        self._publish(RunStarted(started_at))

    def run_resumed(self, started_at: datetime) -> None:
        """A resumed run goes on (its row says running already)."""
        self._publish(RunStarted(started_at, resumed=True))

    def progress(self, *, done: int, total: int) -> None:
        percent = 100 * done // total if total else 100
        self._publish(RunProgress(percent, done, total))

    async def run_finished(
        self,
        status: RunStatus,
        *,
        outputs: dict[str, Any],
        error: dict[str, Any] | None,
        started_at: datetime | None,
        finished_at: datetime,
    ) -> int:
        """Commit the run's end (after everything queued before it), then announce it;
        returns the seq of its run.finished. A failure to commit is raised, and nothing is
        announced: the run stays unfinished in the database and is resumed."""
        seq = self._next_seq()
        outputs, error = self.masked(outputs), self.masked(error)
        end = RunEnd(self.run_id, status, outputs, error, finished_at, seq)
        took = duration_ms(started_at, finished_at)
        self._publish(RunFinished(status, finished_at, took, error), seq)
        with anyio.move_on_after(FINAL_WRITE_GRACE_S, shield=True):
            await self._writer.run_ended(end)
        return seq

    async def cancel_stored(self, run: Run, *, owner: UUID) -> Run | None:
        """Cancel a run that executes nowhere (queued here, or only in the database, its
        lease lapsed): the run as cancelled. None when it had finished already, or when a
        live process other than `owner` holds it: that process is asked to cancel it."""
        finished_at = now()

        def events(seq: int, unfinished: list[str]) -> list[Event]:
            # Seqs go on from the run's log (read under the run's row lock).
            bodies: list[RunEventBody] = [NodeCancelled(node_id) for node_id in unfinished]
            bodies.append(RunFinished(RunStatus.CANCELLED, finished_at, None, CANCELLED_ERROR))
            return [Event(body, self.run_id, seq + i) for i, body in enumerate(bodies)]

        made: list[Event] | None = None
        with anyio.move_on_after(FINAL_WRITE_GRACE_S, shield=True):
            made = await self._store.cancel_unheld_run(
                self.run_id,
                self.workflow_id,
                owner=owner,
                finished_at=finished_at,
                error=CANCELLED_ERROR,
                events=events,
            )
        if made is None:
            # Held elsewhere (or finished meanwhile, and then this asks nothing).
            await self._store.request_cancel(self.run_id, self.workflow_id)
            return None
        self._seq = made[-1].seq
        for event in made:
            self._events.publish(event, self.workflow_id)
        return dataclasses.replace(
            run,
            status=RunStatus.CANCELLED,
            error=dict(CANCELLED_ERROR),
            finished_at=finished_at,
            event_seq=self._seq,
            nodes_done=run.nodes_total,
        )

    async def run_paused(self) -> None:
        """A shutdown paused the run: commit what is queued; it resumes later."""
        self._publish(RunPaused())
        with anyio.move_on_after(FINAL_WRITE_GRACE_S, shield=True):
            await self._writer.flush()

    # -- nodes -----------------------------------------------------------------------------

    def node_started(
        self, node_id: str, node_type: str, attempt: int, started_at: datetime, input: str
    ) -> None:
        """An attempt began; `input` is the node's input as JSON text."""
        # Not awaited: the node's end carries the same fields, so a lost start is harmless.
        self._writer.node_started(
            NodeStart(self.run_id, node_id, started_at, RawJson(self._json(input)), attempt)
        )
        self._publish(NodeStarted(node_id, node_type, attempt, started_at))

    async def node_succeeded(
        self,
        node_id: str,
        *,
        output: Any,
        encoded: bytes,
        attempt: int,
        input: str,
        started_at: datetime,
        finished_at: datetime,
        children_wait: bool,
    ) -> None:
        """A node's success; committed before returning when children wait on it (a resumed
        run never re-runs it), else with the next batch, at the latest with the run's end."""
        if self.redactor:
            input, output = self._json(input), self.masked(output)
            encoded = self._json(encoded.decode()).encode()
        end = NodeEnd(
            self.run_id,
            node_id,
            NodeStatus.SUCCEEDED,
            started_at=started_at,
            finished_at=finished_at,
            input=RawJson(input),
            output=RawJson(encoded.decode()),
            attempt=attempt,
        )
        self._publish(NodeSucceeded(node_id, duration_ms(started_at, finished_at) or 0, output))
        if children_wait:
            with anyio.CancelScope(shield=True):
                await self._writer.node_ended(end)
        else:
            self._writer.node_ended_soon(end)

    def node_copied(self, node_id: str, *, output: Any, input: Any, source: UUID) -> None:
        """A re-run's node that does not run again: succeeded with the output it had in the
        run `source` (committed with the next batch: see executor._copy)."""
        end = NodeEnd(
            self.run_id,
            node_id,
            NodeStatus.SUCCEEDED,
            finished_at=now(),
            input=None if input is None else RawJson(orjson.dumps(input).decode()),
            output=RawJson(orjson.dumps(output).decode()),
            attempt=0,
        )
        self._writer.node_ended_soon(end)
        self._publish(NodeSucceeded(node_id, 0, output, copied_from=str(source)))

    async def node_failed(
        self,
        node_id: str,
        *,
        error: dict[str, Any],
        attempt: int,
        input: str | None,
        started_at: datetime,
        handled: str | None = None,
    ) -> None:
        """A node's failure, always committed before returning. `handled` is the on_error
        that lets the run go on: the node's output is then {"error": error}, which its
        children read (and a resumed run restores)."""
        finished_at = now()
        error = self.masked(error)
        input = None if input is None else self._json(input)
        end = NodeEnd(
            self.run_id,
            node_id,
            NodeStatus.FAILED,
            started_at=started_at,
            finished_at=finished_at,
            input=None if input is None else RawJson(input),
            output=None if handled is None else RawJson(orjson.dumps({"error": error}).decode()),
            error=error,
            attempt=attempt,
        )
        took = duration_ms(started_at, finished_at) or 0
        self._publish(NodeFailed(node_id, took, error, handled))
        with anyio.CancelScope(shield=True):
            await self._writer.node_ended(end)

    def item_ended(
        self,
        node_id: str,
        index: int,
        *,
        encoded: bytes | None,
        error: dict[str, Any] | None,
        done: int,
        total: int,
    ) -> None:
        """An item of a for_each node finished (its JSON output, or its error): with the next
        commit, so a resumed run runs only the items left."""
        if self.redactor and encoded is not None:
            encoded = self._json(encoded.decode()).encode()
        error = self.masked(error)
        self._writer.item_ended(
            ItemEnd(
                self.run_id,
                node_id,
                index,
                None if encoded is None else RawJson(encoded.decode()),
                error,
                now(),
            )
        )
        status = NodeStatus.FAILED if error is not None else NodeStatus.SUCCEEDED
        self._publish(NodeItemEnded(node_id, index, str(status), done, total))

    def nodes_skipped(self, node_ids: list[str]) -> None:
        # Not awaited: a resumed run decides the same skips again from its successes.
        for node_id in node_ids:
            self._writer.node_ended_soon(NodeEnd(self.run_id, node_id, NodeStatus.SKIPPED))
            self._publish(NodeSkipped(node_id))

    def node_cancelled(
        self,
        node_id: str,
        started_at: datetime | None = None,
        finished_at: datetime | None = None,
    ) -> None:
        """A node cancelled while running (since `started_at`) or before it started (at
        the run's `finished_at`)."""
        finished_at = finished_at or now()
        self._writer.node_ended_soon(
            NodeEnd(
                self.run_id,
                node_id,
                NodeStatus.CANCELLED,
                started_at=started_at,
                finished_at=finished_at,
            )
        )
        self._publish(NodeCancelled(node_id, duration_ms(started_at, finished_at)))

    def node_interrupted(self, node_id: str, started_at: datetime) -> None:
        """A shutdown stopped the node: pending again, it runs when the run resumes."""
        self.log(node_id, "warning", "interrupted by a shutdown; it runs again")
        self._writer.node_ended_soon(
            NodeEnd(self.run_id, node_id, NodeStatus.PENDING, started_at=started_at)
        )
        self._publish(NodeInterrupted(node_id))

    def node_reset(self, node_id: str) -> None:
        """A resumed run runs the node again (its process stopped before it succeeded)."""
        self._writer.node_ended_soon(NodeEnd(self.run_id, node_id, NodeStatus.PENDING))
        self._publish(NodeInterrupted(node_id))

    async def commit(self) -> None:
        """Return once what is queued is committed."""
        with anyio.CancelScope(shield=True):
            await self._writer.flush()

    # -- log lines -------------------------------------------------------------------------

    def log(
        self, node_id: str | None, level: str, message: str, data: dict[str, Any] | None = None
    ) -> None:
        """A log line of the run (node_id None) or of a node: streamed, and queued."""
        record = LogRecord(
            run_id=self.run_id,
            node_id=node_id,
            ts=now(),
            level=level,
            message=self.masked(without_nul(message[:MAX_MESSAGE_CHARS])),
            data=self.masked(_log_data(data or {})),
        )
        self._writer.log(record)
        self._publish(NodeLogged(node_id, level, record.message, record.data))
