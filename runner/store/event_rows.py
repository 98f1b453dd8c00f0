"""Events as rows of the durable log: one row per run per commit, and the NOTIFY payloads
that tell the other processes of them (see runner/store/writer.py)."""

from __future__ import annotations

from typing import NamedTuple
from uuid import UUID

from runner.live.events import Event, RunFinished
from runner.store import notices


class EventColumns(NamedTuple):
    """Events as log rows (one per run per commit) and the NOTIFY payloads telling of them."""

    run_id: list[UUID]
    first_seq: list[int]
    seq: list[int]
    events: list[str]
    notices: list[str]


def event_columns(
    origin: str, events: list[tuple[Event, UUID]], told: list[notices.Notice] | None = None
) -> EventColumns:
    """One log row per run: its events, in seq order, as a JSON array of their texts; and
    the wake-ups telling of them, after the notices `told` (runs created)."""
    by_run: dict[UUID, tuple[UUID, list[Event]]] = {}
    for event, workflow_id in events:
        assert event.run_id is not None
        by_run.setdefault(event.run_id, (workflow_id, []))[1].append(event)
    columns = EventColumns([], [], [], [], [])
    appended: list[notices.Notice] = list(told or ())
    for run_id, (workflow_id, run_events) in by_run.items():
        first, last = run_events[0].seq, run_events[-1].seq
        columns.run_id.append(run_id)
        columns.first_seq.append(first)
        columns.seq.append(last)
        columns.events.append("[" + ",".join(e.text() for e in run_events) + "]")
        finished = run_events[-1].type == RunFinished.TYPE
        appended.append(notices.EventsAppended(run_id, workflow_id, first, last, finished))
    columns.notices.extend(notices.payloads(origin, appended))
    return columns
