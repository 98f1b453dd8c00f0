"""What runs leave behind: node runs (with a for_each node's items), log lines, artifacts,
and a run's snapshot rows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from runner.models import NodeStatus, Row, Run, duration_ms, iso


@dataclass(frozen=True, slots=True)
class ItemResult:
    """A finished item of a for_each node: its output, or its error."""

    output: Any
    error: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class NodeRun:
    """One node's run within a run; `items` is (done, total) for a for_each node."""

    node_id: str
    node_type: str
    status: NodeStatus
    attempt: int
    started_at: datetime | None
    finished_at: datetime | None
    input: Any
    output: Any
    error: dict[str, Any] | None
    items: tuple[int, int] | None = None

    @classmethod
    def from_row(cls, row: Row) -> NodeRun:
        return cls(
            node_id=row["node_id"],
            node_type=row["node_type"],
            status=NodeStatus(row["status"]),
            attempt=row["attempt"],
            started_at=row["started_at"],
            finished_at=row["finished_at"],
            input=row["input"],
            output=row["output"],
            error=row["error"],
            items=None if row["items_total"] is None else (row["items_done"], row["items_total"]),
        )

    @property
    def duration_ms(self) -> int | None:
        return duration_ms(self.started_at, self.finished_at)

    def to_json(self) -> dict[str, Any]:
        """The node run as GET /runs/{id}/nodes shows it."""
        return {
            "node_id": self.node_id,
            "node_type": self.node_type,
            "status": str(self.status),
            "attempt": self.attempt,
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "duration_ms": self.duration_ms,
            "input": self.input,
            "output": self.output,
            "error": self.error,
            "items": None
            if self.items is None
            else {"done": self.items[0], "total": self.items[1]},
        }


@dataclass(frozen=True, slots=True)
class LogLine:
    """One log line of a run or of one of its nodes."""

    id: int
    node_id: str | None
    ts: datetime
    level: str
    message: str
    data: dict[str, Any] | None

    def to_json(self) -> dict[str, Any]:
        """The line as GET /runs/{id}/logs shows it."""
        return {
            "id": self.id,
            "node_id": self.node_id,
            "ts": self.ts.isoformat(),
            "level": self.level,
            "message": self.message,
            "data": self.data,
        }

    @classmethod
    def from_row(cls, row: Row) -> LogLine:
        return cls(
            id=row["id"],
            node_id=row["node_id"],
            ts=row["ts"],
            level=row["level"],
            message=row["message"],
            data=row["data"],
        )


@dataclass(frozen=True, slots=True)
class Artifact:
    """A stored artifact's record."""

    id: UUID
    run_id: UUID
    node_id: str
    uri: str
    size: int
    content_type: str
    created_at: datetime

    @classmethod
    def from_row(cls, row: Row) -> Artifact:
        return cls(
            id=row["id"],
            run_id=row["run_id"],
            node_id=row["node_id"],
            uri=row["uri"],
            size=row["size"],
            content_type=row["content_type"],
            created_at=row["created_at"],
        )


@dataclass(frozen=True, slots=True)
class LogRecord:
    """A log line waiting to be written."""

    run_id: UUID
    node_id: str | None
    ts: datetime
    level: str
    message: str
    data: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class RunSnapshotRows:
    """A run and its node runs as of the seq of the last event in its log."""

    run: Run
    nodes: list[NodeRun]
    seq: int
