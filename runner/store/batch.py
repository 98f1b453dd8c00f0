"""A Writer's batch: the writes queued between two commits, folded into the arguments of
one statement (write_batch's columns, one array per field, joined back into rows by
`unnest`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple, TypeVar
from uuid import UUID

import anyio

from runner.live.events import Event
from runner.records import LogRecord
from runner.store.db import RawJson
from runner.store.event_rows import EventColumns, event_columns
from runner.store.protocol import ItemEnd, NodeEnd, NodeStart, RunEnd


@dataclass(slots=True)
class Pending:
    """An awaited write: set once its batch has committed (or failed)."""

    done: anyio.Event = field(default_factory=anyio.Event)
    error: BaseException | None = None


C = TypeVar("C")


def columns_of(kind: type[C], rows: Iterable[Any]) -> C:
    """Rows as one array per field of `kind` (what `unnest` joins back into rows): aligned
    by construction, each column named after the records' attribute it holds."""
    rows = list(rows)
    fields: tuple[str, ...] = kind._fields  # type: ignore[attr-defined]
    return kind(*([getattr(row, name) for row in rows] for name in fields))


class RunStartColumns(NamedTuple):
    run_id: list[UUID]
    started_at: list[datetime]


class NodeStartColumns(NamedTuple):
    run_id: list[UUID]
    node_id: list[str]
    started_at: list[datetime]
    input: list[RawJson | None]
    attempt: list[int]


class NodeEndColumns(NamedTuple):
    run_id: list[UUID]
    node_id: list[str]
    status: list[str]
    started_at: list[datetime | None]
    finished_at: list[datetime | None]
    input: list[RawJson | None]
    output: list[RawJson | None]
    error: list[dict[str, Any] | None]
    attempt: list[int | None]


class LogColumns(NamedTuple):
    run_id: list[UUID]
    node_id: list[str | None]
    ts: list[datetime]
    level: list[str]
    message: list[str]
    data: list[dict[str, Any] | None]


class RunEndColumns(NamedTuple):
    run_id: list[UUID]
    status: list[str]
    outputs: list[dict[str, Any] | None]
    error: list[dict[str, Any] | None]
    finished_at: list[datetime]
    event_seq: list[int]
    started_at: list[datetime | None]


class ItemEndColumns(NamedTuple):
    run_id: list[UUID]
    node_id: list[str]
    idx: list[int]
    output: list[RawJson | None]
    error: list[dict[str, Any] | None]
    finished_at: list[datetime]


class BatchColumns(NamedTuple):
    """write_batch's arguments by part, in the statement's order ($1 … $39)."""

    run_starts: RunStartColumns
    node_starts: NodeStartColumns
    node_ends: NodeEndColumns
    logs: LogColumns
    run_ends: RunEndColumns
    events: EventColumns
    items: ItemEndColumns

    def arguments(self) -> list[list[Any]]:
        return [column for part in self for column in part]


@dataclass(slots=True)
class Batch:
    run_starts: dict[UUID, datetime] = field(default_factory=dict)
    node_starts: dict[tuple[UUID, str], NodeStart] = field(default_factory=dict)
    node_ends: dict[tuple[UUID, str], NodeEnd] = field(default_factory=dict)
    logs: list[LogRecord] = field(default_factory=list)
    run_ends: dict[UUID, RunEnd] = field(default_factory=dict)
    events: list[tuple[Event, UUID]] = field(default_factory=list)
    items: list[ItemEnd] = field(default_factory=list)
    waiters: list[Pending] = field(default_factory=list)
    # Who awaits which row: a row that fails on its own fails only its awaiter.
    owners: dict[tuple[Any, ...], Pending] = field(default_factory=dict)

    def __len__(self) -> int:
        return (
            len(self.run_starts)
            + len(self.node_starts)
            + len(self.node_ends)
            + len(self.logs)
            + len(self.run_ends)
            + len(self.events)
            + len(self.items)
        )

    def run_ids(self) -> set[UUID]:
        """The runs this batch writes to."""
        return {
            *self.run_starts,
            *(k[0] for k in self.node_starts),
            *(k[0] for k in self.node_ends),
            *(r.run_id for r in self.logs),
            *self.run_ends,
            *(i.run_id for i in self.items),
        }

    def only_node_ends(self) -> bool:
        """True when the batch is node ends and events alone (once starts are folded into
        the ends)."""
        return not (
            self.run_starts
            or self.logs
            or self.run_ends
            or self.items
            or any(key not in self.node_ends for key in self.node_starts)
        )

    def columns(self) -> BatchColumns:
        """The write_batch statement's arguments, with overlapping writes folded: a row is
        updated once per statement."""
        for key in self.node_ends:
            self.node_starts.pop(key, None)  # the end carries the start's fields
        run_starts = dict(self.run_starts)
        run_ends = []
        for run_id, end in self.run_ends.items():
            started = run_starts.pop(run_id, None)
            if started is not None and end.started_at is None:
                end = dataclasses.replace(end, started_at=started)
            run_ends.append(end)
        return BatchColumns(
            RunStartColumns(list(run_starts), list(run_starts.values())),
            columns_of(NodeStartColumns, self.node_starts.values()),
            columns_of(NodeEndColumns, self.node_ends.values()),
            columns_of(LogColumns, self.logs),
            columns_of(RunEndColumns, run_ends),
            event_columns(self.events),
            columns_of(ItemEndColumns, self.items),
        )
