"""Events as rows of the durable log, one row per run per commit, and the wake-ups that
tell the other processes of them (see runner/store/writer.py)."""

from __future__ import annotations

from typing import NamedTuple
from uuid import UUID

from runner.live.events import Event, RunFinished
from runner.store import notices


class EventColumns(NamedTuple):
    """Events as log rows: one per run per commit."""

    run_id: list[UUID]
    first_seq: list[int]
    seq: list[int]
    events: list[str]


def _by_run(events: list[tuple[Event, UUID]]) -> dict[UUID, tuple[UUID, list[Event]]]:
    by_run: dict[UUID, tuple[UUID, list[Event]]] = {}
    for event, workflow_id in events:
        assert event.run_id is not None
        by_run.setdefault(event.run_id, (workflow_id, []))[1].append(event)
    return by_run


def event_columns(events: list[tuple[Event, UUID]]) -> EventColumns:
    """One log row per run: its events, in seq order, as a JSON array of their texts."""
    columns = EventColumns([], [], [], [])
    for run_id, (_, run_events) in _by_run(events).items():
        columns.run_id.append(run_id)
        columns.first_seq.append(run_events[0].seq)
        columns.seq.append(run_events[-1].seq)
        columns.events.append("[" + ",".join(e.text() for e in run_events) + "]")
    return columns


def appended(events: list[tuple[Event, UUID]]) -> list[notices.Notice]:
    """The wake-ups telling of these events: per run, the seqs its log grew by."""
    return [
        notices.EventsAppended(
            run_id,
            workflow_id,
            run_events[0].seq,
            run_events[-1].seq,
            run_events[-1].type == RunFinished.TYPE,
        )
        for run_id, (workflow_id, run_events) in _by_run(events).items()
    ]
