"""The events a run publishes, as typed records, and their one serialisation.

Every message on the wire is `{"type", "run_id", "seq", "ts", **fields}`. `Event` is that
envelope; its `body` is one of the records below, each knowing its type name and its
fields. `Event.text()` is the only place an event becomes JSON (once, however many
subscribers send it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar
from uuid import UUID

import orjson

from runner.models import human_duration

# Outputs and log data larger than this travel as a truncated preview; GET the node for all.
PREVIEW_BYTES = 4096


def bounded(name: str, value: Any, limit: int = PREVIEW_BYTES) -> dict[str, Any]:
    """{name: value} when its JSON is small, else {name_preview: its first bytes of JSON,
    name_truncated: true}: events stay small whatever a node outputs."""
    if value is None or isinstance(value, bool | int | float):
        return {name: value}
    text = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
    if len(text) <= limit:
        return {name: value}
    return {
        f"{name}_preview": text[:limit].decode(errors="ignore"),
        f"{name}_truncated": True,
    }


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


# -- run events -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunCreated:
    """A run was stored (the workflow channel's first word of it)."""

    TYPE: ClassVar[str] = "run.created"
    status: str
    trigger_type: str
    created_at: str

    def fields(self) -> dict[str, Any]:
        return {"status": self.status, "trigger_type": self.trigger_type,
                "created_at": self.created_at}  # fmt: skip


@dataclass(frozen=True, slots=True)
class RunStarted:
    TYPE: ClassVar[str] = "run.started"
    started_at: datetime
    resumed: bool = False

    def fields(self) -> dict[str, Any]:
        data: dict[str, Any] = {"status": "running", "started_at": self.started_at.isoformat()}
        if self.resumed:
            data["resumed"] = True
        return data


@dataclass(frozen=True, slots=True)
class RunProgress:
    TYPE: ClassVar[str] = "run.progress"
    progress: int
    done: int
    total: int

    def fields(self) -> dict[str, Any]:
        return {"progress": self.progress, "done": self.done, "total": self.total}


@dataclass(frozen=True, slots=True)
class RunPaused:
    """A shutdown paused the run; it resumes when weft starts again."""

    TYPE: ClassVar[str] = "run.paused"

    def fields(self) -> dict[str, Any]:
        return {"status": "running"}


@dataclass(frozen=True, slots=True)
class RunFinished:
    TYPE: ClassVar[str] = "run.finished"
    status: str
    finished_at: datetime | None
    duration_ms: int | None
    error: dict[str, Any] | None

    def fields(self) -> dict[str, Any]:
        duration_ms = self.duration_ms
        return {
            "status": str(self.status),
            "finished_at": _iso(self.finished_at),
            "duration_ms": duration_ms,
            "duration": None if duration_ms is None else human_duration(duration_ms),
            "error": self.error,
        }


# -- node events ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NodeStarted:
    TYPE: ClassVar[str] = "node.started"
    node_id: str
    node_type: str
    attempt: int
    started_at: datetime

    def fields(self) -> dict[str, Any]:
        return {
            "node_id": self.node_id,
            "node_type": self.node_type,
            "status": "running",
            "attempt": self.attempt,
            "started_at": self.started_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class NodeLogged:
    TYPE: ClassVar[str] = "node.log"
    node_id: str | None
    level: str
    message: str
    data: dict[str, Any] | None

    def fields(self) -> dict[str, Any]:
        return {"node_id": self.node_id, "level": self.level, "message": self.message,
                **bounded("data", self.data)}  # fmt: skip


@dataclass(frozen=True, slots=True)
class NodeSucceeded:
    TYPE: ClassVar[str] = "node.succeeded"
    node_id: str
    duration_ms: int
    output: Any
    # A re-run's node not run again: the run its output is copied from (else omitted).
    copied_from: str | None = None

    def fields(self) -> dict[str, Any]:
        fields = {"node_id": self.node_id, "status": "succeeded",
                  "duration_ms": self.duration_ms, **bounded("output", self.output)}  # fmt: skip
        if self.copied_from is not None:
            fields["copied_from"] = self.copied_from
        return fields


@dataclass(frozen=True, slots=True)
class NodeFailed:
    TYPE: ClassVar[str] = "node.failed"
    node_id: str
    duration_ms: int
    error: dict[str, Any]
    # The on_error ("continue", "branch") that lets the run go on, else None (omitted).
    handled: str | None = None

    def fields(self) -> dict[str, Any]:
        fields = {"node_id": self.node_id, "status": "failed", "duration_ms": self.duration_ms,
                  "error": self.error}  # fmt: skip
        if self.handled is not None:
            fields["handled"] = self.handled
        return fields


@dataclass(frozen=True, slots=True)
class NodeItemEnded:
    """One item of a for_each node finished: its index, how it ended, and the node's
    progress (`done` of `total` items)."""

    TYPE: ClassVar[str] = "node.item"
    node_id: str
    index: int
    status: str
    done: int
    total: int

    def fields(self) -> dict[str, Any]:
        return {"node_id": self.node_id, "index": self.index, "status": self.status,
                "done": self.done, "total": self.total}  # fmt: skip


@dataclass(frozen=True, slots=True)
class NodeSkipped:
    TYPE: ClassVar[str] = "node.skipped"
    node_id: str

    def fields(self) -> dict[str, Any]:
        return {"node_id": self.node_id, "status": "skipped"}


@dataclass(frozen=True, slots=True)
class NodeCancelled:
    """A node cancelled while running (with its duration) or before it started."""

    TYPE: ClassVar[str] = "node.cancelled"
    node_id: str
    duration_ms: int | None = None

    def fields(self) -> dict[str, Any]:
        data: dict[str, Any] = {"node_id": self.node_id, "status": "cancelled"}
        if self.duration_ms is not None:
            data["duration_ms"] = self.duration_ms
        return data


@dataclass(frozen=True, slots=True)
class NodeInterrupted:
    """A shutdown stopped the node; it runs again when the run resumes."""

    TYPE: ClassVar[str] = "node.interrupted"
    node_id: str

    def fields(self) -> dict[str, Any]:
        return {"node_id": self.node_id, "status": "pending"}


# -- workflow events and stream messages ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class WorkflowUpdated:
    TYPE: ClassVar[str] = "workflow.updated"
    workflow: dict[str, Any]

    def fields(self) -> dict[str, Any]:
        return {"workflow": self.workflow}


@dataclass(frozen=True, slots=True)
class RunSnapshot:
    """A run's state as of the envelope's seq: only events after it follow."""

    TYPE: ClassVar[str] = "snapshot"
    run: dict[str, Any]
    nodes: list[dict[str, Any]]

    def fields(self) -> dict[str, Any]:
        return {"run": self.run, "nodes": self.nodes}


@dataclass(frozen=True, slots=True)
class WorkflowSnapshot:
    """A workflow and its recent runs as of the envelope's seq (the workflow channel's)."""

    TYPE: ClassVar[str] = "snapshot"
    workflow: dict[str, Any]
    runs: list[dict[str, Any]]

    def fields(self) -> dict[str, Any]:
        return {"workflow": self.workflow, "runs": self.runs}


@dataclass(frozen=True, slots=True)
class Lagged:
    """The subscriber fell behind; a fresh snapshot follows."""

    TYPE: ClassVar[str] = "lagged"

    def fields(self) -> dict[str, Any]:
        return {"message": "you fell behind; a fresh snapshot follows"}


@dataclass(frozen=True, slots=True)
class Recorded:
    """An event read back from the durable log: its type and its fields as they were sent."""

    TYPE: str
    data: dict[str, Any]

    def fields(self) -> dict[str, Any]:
        return self.data


RunEventBody = (
    RunStarted | RunProgress | RunPaused | RunFinished
    | NodeStarted | NodeLogged | NodeSucceeded | NodeFailed | NodeSkipped | NodeCancelled
    | NodeInterrupted | NodeItemEnded | Recorded
)  # fmt: skip
EventBody = RunEventBody | RunCreated | WorkflowUpdated | RunSnapshot | WorkflowSnapshot | Lagged

# node.log and progress (the run's, an item's) are for the run's own channel; the workflow
# channel carries status.
WORKFLOW_SKIPPED = frozenset({NodeLogged.TYPE, RunProgress.TYPE, NodeItemEnded.TYPE})
ENVELOPE = frozenset({"type", "run_id", "seq", "ts"})


@dataclass(frozen=True, slots=True)
class Event:
    """One message: a body, the run it is about, its seq on its channel and its time.

    On the workflow channel a run's event is a copy with that channel's seq, the run's own
    seq as `run_seq`, and the `workflow_id`.
    """

    body: EventBody
    run_id: UUID | None
    seq: int
    ts: datetime = field(default_factory=lambda: datetime.now(UTC))
    workflow_id: UUID | None = None
    run_seq: int | None = None
    # Its JSON, made once however many subscribers send it.
    _text: list[str] = field(default_factory=list, init=False, repr=False, compare=False)

    @property
    def type(self) -> str:
        return self.body.TYPE

    def to_json(self) -> dict[str, Any]:
        return self._data(self.ts.isoformat())

    def _data(self, ts: str | datetime) -> dict[str, Any]:
        data = {
            "type": self.body.TYPE,
            "run_id": None if self.run_id is None else str(self.run_id),
            "seq": self.seq,
            "ts": ts,
            **self.body.fields(),
        }
        if self.workflow_id is not None:
            data["run_seq"] = self.run_seq
            data["workflow_id"] = str(self.workflow_id)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Event:
        """An event as `to_json` gave it (read back from the log)."""
        fields = {k: v for k, v in data.items() if k not in ENVELOPE}
        run_id = data.get("run_id")
        return cls(
            Recorded(data["type"], fields),
            None if run_id is None else UUID(run_id),
            data["seq"],
            datetime.fromisoformat(data["ts"]),
        )

    def text(self) -> str:
        """The event as a JSON text message (encoded once, then shared)."""
        if not self._text:
            # orjson writes the datetime as isoformat() would, faster.
            self._text.append(orjson.dumps(self._data(self.ts)).decode())
        return self._text[0]
