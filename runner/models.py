"""The runner's value objects: statuses, workflows, runs, node runs, logs, artifacts.

Built from database rows (`from_row`), turned into the API's JSON (`to_json`); records of
the driver never leave runner/store/.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal, Protocol
from uuid import UUID


class Row(Protocol):
    """A database row as the value objects read it (an asyncpg Record, or a dict)."""

    def __getitem__(self, key: str, /) -> Any: ...

    def keys(self) -> Iterable[str]: ...


class NodeStatus(StrEnum):
    """A node run's status."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"


FINISHED_NODE_STATUSES = frozenset(
    {NodeStatus.SUCCEEDED, NodeStatus.FAILED, NodeStatus.SKIPPED, NodeStatus.CANCELLED}
)
# What a run's error says when it was cancelled.
CANCELLED_ERROR: dict[str, Any] = {"type": "Cancelled", "message": "the run was cancelled"}


def duration_ms(start: datetime | None, end: datetime | None) -> int | None:
    """Whole milliseconds from start to end (never negative); None when either is unknown."""
    if start is None or end is None:
        return None
    return max(0, round((end - start).total_seconds() * 1000))


class Durability(StrEnum):
    """When a run's progress is persisted (a workflow's choice; see README, "Durability").

    SYNC: a node's success is committed before its children start (a crash re-runs only the
    nodes in flight). ASYNC: results are committed in the background, grouped (a crash may
    re-run the last few nodes; a finished run's outcome is never lost). EXIT: persisted at
    the run's end only (a crash re-runs the run from its start).
    """

    SYNC = "sync"
    ASYNC = "async"
    EXIT = "exit"


class RunStatus(StrEnum):
    """A run's status."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED)


# The longest name a workflow may have (the API refuses longer ones).
MAX_NAME_LENGTH = 200


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most `requests` runs started per `per_s` seconds by a workflow's triggers (its
    webhook and run calls), across every process."""

    requests: int
    per_s: float

    def to_json(self) -> dict[str, Any]:
        return {"requests": self.requests, "per_s": self.per_s}

    @classmethod
    def from_row(cls, row: Row) -> RateLimit | None:
        """The limit a workflows row holds; None without one."""
        if row["rate_limit_requests"] is None:
            return None
        return cls(row["rate_limit_requests"], row["rate_limit_per_s"])


@dataclass(frozen=True, slots=True)
class Workflow:
    """A saved workflow: one mutable graph plus its webhook."""

    id: UUID
    name: str
    webhook_slug: str
    webhook_secret: str | None
    graph: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    max_concurrency: int | None = None
    durability: Durability = Durability.SYNC
    description: str = ""
    tags: tuple[str, ...] = ()
    rate_limit: RateLimit | None = None

    def to_json(self) -> dict[str, Any]:
        """The workflow as the API shows it (never its secret)."""
        return {
            "id": str(self.id),
            "name": self.name,
            "description": self.description,
            "tags": list(self.tags),
            "max_concurrency": self.max_concurrency,
            "rate_limit": None if self.rate_limit is None else self.rate_limit.to_json(),
            "durability": str(self.durability),
            "webhook_slug": self.webhook_slug,
            "webhook_url": f"/hooks/{self.webhook_slug}",
            "has_webhook_secret": bool(self.webhook_secret),
            "graph": self.graph,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }

    @classmethod
    def from_row(cls, row: Row) -> Workflow:
        return cls(
            id=row["id"],
            name=row["name"],
            webhook_slug=row["webhook_slug"],
            webhook_secret=row["webhook_secret"],
            graph=row["graph"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            max_concurrency=row["max_concurrency"],
            durability=Durability(row["durability"]),
            description=row["description"],
            tags=tuple(row["tags"]),
            rate_limit=RateLimit.from_row(row),
        )


@dataclass(frozen=True, slots=True)
class Lineage:
    """Where a run comes from: the run whose workflow.run node started it (and how deep it
    is nested), or the run it re-runs (and the nodes it runs again)."""

    parent_run_id: UUID | None = None
    depth: int = 0
    rerun_of: UUID | None = None
    rerun_nodes: tuple[str, ...] | None = None

    @classmethod
    def from_row(cls, row: Row, keys: set[str]) -> Lineage:
        if "parent_run_id" not in keys:
            return NO_LINEAGE
        nodes = row["rerun_nodes"] if "rerun_nodes" in keys else None
        return cls(
            row["parent_run_id"],
            row["depth"] if "depth" in keys else 0,
            row["rerun_of"],
            None if nodes is None else tuple(nodes),
        )


NO_LINEAGE = Lineage()


@dataclass(frozen=True, slots=True)
class Run:
    """A run of a workflow, with the copy of the graph it executes."""

    id: UUID
    workflow_id: UUID
    status: RunStatus
    trigger_type: str
    trigger_payload: Any
    graph: dict[str, Any] | None
    outputs: dict[str, Any] | None
    error: dict[str, Any] | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    nodes_total: int = 0
    nodes_done: int = 0
    event_seq: int = 0
    lease_owner: UUID | None = None  # the process that holds it (executes or will)
    durability: Durability = Durability.SYNC
    lineage: Lineage = NO_LINEAGE

    @classmethod
    def from_row(cls, row: Row) -> Run:
        keys = set(row.keys())
        return cls(
            id=row["id"],
            workflow_id=row["workflow_id"],
            status=RunStatus(row["status"]),
            trigger_type=row["trigger_type"],
            trigger_payload=row["trigger_payload"] if "trigger_payload" in keys else None,
            graph=row["graph"] if "graph" in keys else None,
            outputs=row["outputs"] if "outputs" in keys else None,
            error=row["error"],
            created_at=row["created_at"],
            started_at=row["started_at"],
            finished_at=row["finished_at"],
            nodes_total=row["nodes_total"] if "nodes_total" in keys else 0,
            nodes_done=row["nodes_done"] if "nodes_done" in keys else 0,
            event_seq=row["event_seq"] if "event_seq" in keys else 0,
            lease_owner=row["lease_owner"] if "lease_owner" in keys else None,
            durability=Durability(row["durability"] if "durability" in keys else "sync"),
            lineage=Lineage.from_row(row, keys),
        )

    def to_json(self, *, summary: bool = False) -> dict[str, Any]:
        """The run as GET /runs/{id} shows it; as run history lists it with `summary`
        (without its payload, progress and outputs)."""
        duration_ms = self.duration_ms(datetime.now(UTC))
        data: dict[str, Any] = {
            "id": str(self.id),
            "workflow_id": str(self.workflow_id),
            "status": str(self.status),
            "trigger_type": self.trigger_type,
            "created_at": self.created_at.isoformat(),
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "duration_ms": duration_ms,
            "duration": None if duration_ms is None else human_duration(duration_ms),
            "error": self.error,
            "parent_run_id": _str(self.lineage.parent_run_id),
            "rerun_of": _str(self.lineage.rerun_of),
        }
        if not summary:
            data["trigger_payload"] = self.trigger_payload
            data["progress"] = self.progress
            data["outputs"] = self.outputs
        return data

    @property
    def progress(self) -> int:
        """Percent of the run's nodes in a final state (100 once the run has finished)."""
        if self.status.finished:
            return 100
        if not self.nodes_total:
            return 0
        return 100 * self.nodes_done // self.nodes_total

    def duration_ms(self, now: datetime) -> int | None:
        """Milliseconds from start to finish, or to now while running."""
        return duration_ms(self.started_at, self.finished_at or now)


# What started a run: a request, a webhook call, a workflow.run node, a re-run.
TriggerType = Literal["manual", "webhook", "workflow", "rerun", "schedule"]


@dataclass(frozen=True, slots=True)
class RunFilter:
    """Which runs a history lists; a field left None filters nothing."""

    statuses: tuple[RunStatus, ...] | None = None
    trigger_types: tuple[str, ...] | None = None
    since: datetime | None = None  # created at or after
    until: datetime | None = None  # created before
    parent_run_id: UUID | None = None  # started by this run's workflow.run nodes

    def matches(self, run: Run) -> bool:
        return (
            (self.statuses is None or run.status in self.statuses)
            and (self.trigger_types is None or run.trigger_type in self.trigger_types)
            and (self.since is None or run.created_at >= self.since)
            and (self.until is None or run.created_at < self.until)
            and (self.parent_run_id is None or run.lineage.parent_run_id == self.parent_run_id)
        )


ALL_RUNS = RunFilter()


@dataclass(frozen=True, slots=True)
class WorkflowFilter:
    """Which workflows a list shows: those whose name holds `q` (any case), those tagged
    `tag`; None filters nothing."""

    q: str | None = None
    tag: str | None = None

    def matches(self, workflow: Workflow) -> bool:
        return (self.q is None or self.q.lower() in workflow.name.lower()) and (
            self.tag is None or self.tag in workflow.tags
        )


ALL_WORKFLOWS = WorkflowFilter()


@dataclass(frozen=True, slots=True)
class Hook:
    """A webhook: its slug, the workflow it starts and the secret its calls are signed with."""

    slug: str
    workflow_id: UUID
    secret: str | None
    rate_limit: RateLimit | None = None  # the workflow's, when the hook was looked up


def human_duration(ms: int) -> str:
    """A duration as people say it: "250 ms", "4.2 sec", "1 min 30 sec", "2 h 5 min"."""
    if ms < 1000:
        return f"{ms} ms"
    if ms < 59_950:  # below this, one decimal never rounds up to "60.0"
        text = f"{ms / 1000:.1f}".rstrip("0").rstrip(".")
        return f"{text} sec"
    seconds = max(ms, 60_000) / 1000
    total = int(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{minutes} min {secs} sec" if secs else f"{minutes} min"


def iso(value: datetime | None) -> str | None:
    """A time as ISO 8601, or None."""
    return None if value is None else value.isoformat()


def _str(value: UUID | None) -> str | None:
    return None if value is None else str(value)
