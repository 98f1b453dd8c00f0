"""The actors' messages: small frozen records, dispatched with `match`.

A Supervisor receives SupervisorMessage (from the Runtime, and RunEnded from its own run
tasks); a run's executor receives RunMessage (StopRun from its supervisor, a report from
each of its node tasks), delivered synchronously (see runner/engine/executor.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any
from uuid import UUID

import anyio

from runner.graph.plan import ExecutionPlan, PlanNode
from runner.models import Run

# -- to a supervisor ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StartRun:
    """Execute this stored run: a new one, or (resume) one that an earlier process began."""

    run: Run
    resume: bool = False


@dataclass(frozen=True, slots=True)
class CancelRun:
    """Cancel this run, wherever it is: queued, executing, or only in the database."""

    run: Run


@dataclass(frozen=True, slots=True)
class GraphUpdated:
    """The workflow was overwritten: rebuild the cached plan, apply the new limit."""

    graph: dict[str, Any]
    plan: ExecutionPlan
    max_concurrency: int | None


@dataclass(frozen=True, slots=True)
class RunEnded:
    """A run task of this supervisor has ended (finished, failed to start, or paused);
    `run` is how it ended, when it did (what its waiters are answered with)."""

    run_id: UUID
    run: Run | None = None


@dataclass(frozen=True, slots=True)
class Drain:
    """Shutting down: start nothing new; let in-flight nodes finish; then stop."""


@dataclass(frozen=True, slots=True)
class Interrupt:
    """The shutdown grace is over: stop in-flight nodes (they run again on resume)."""


SupervisorMessage = StartRun | CancelRun | GraphUpdated | RunEnded | Drain | Interrupt


# -- to a run's executor --------------------------------------------------------------------


class Stop(Enum):
    """Why a run stops early."""

    NONE = "none"
    CANCEL = "cancel"  # the user cancelled it: in-flight nodes cancelled
    DRAIN = "drain"  # shutting down: no new nodes; in-flight ones may finish
    INTERRUPT = "interrupt"  # grace is over: in-flight nodes go back to pending


@dataclass(frozen=True, slots=True)
class StopRun:
    """Stop the run early, for `reason` (a stronger reason overrides a weaker one)."""

    reason: Stop


@dataclass(frozen=True, slots=True)
class Assignment:
    """A node for a task to run: its plan node, its cancel scope, its parents' outputs and
    its view of its ancestors' (`nodes`)."""

    node: PlanNode
    scope: anyio.CancelScope
    upstream: dict[str, Any]
    nodes: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class NodeOutput:
    """A node succeeded (its output is committed, when children wait on it)."""

    node_id: str
    output: dict[str, Any]


@dataclass(frozen=True, slots=True)
class NodeFailure:
    """A node failed after its retries (its failure is committed); `handled` when its
    on_error lets the run go on."""

    node_id: str
    error: dict[str, Any]
    handled: bool = False


@dataclass(frozen=True, slots=True)
class NodeStopped:
    """A node's scope was cancelled before it could finish (nothing recorded yet)."""

    node_id: str
    started_at: datetime


RunMessage = StopRun | NodeOutput | NodeFailure | NodeStopped
