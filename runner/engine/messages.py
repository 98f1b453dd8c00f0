"""The messages a Supervisor receives: small frozen records, dispatched with `match`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from runner.models import Run


@dataclass(frozen=True, slots=True)
class StartRun:
    """Execute this stored run: a new one, or (resume) one that an earlier process began."""

    run: Run
    resume: bool = False


@dataclass(frozen=True, slots=True)
class CancelRun:
    """Cancel this run, wherever it is: queued, executing, or only in the database."""

    run_id: UUID


@dataclass(frozen=True, slots=True)
class GraphUpdated:
    """The workflow was overwritten: rebuild the cached plan, apply the new limit."""

    graph: dict[str, Any]
    max_concurrency: int | None


@dataclass(frozen=True, slots=True)
class RunFinished:
    """A run task of this supervisor has ended (finished, failed to start, or paused)."""

    run_id: UUID


@dataclass(frozen=True, slots=True)
class Drain:
    """Shutting down: start nothing new; let in-flight nodes finish; then stop."""


@dataclass(frozen=True, slots=True)
class Interrupt:
    """The shutdown grace is over: stop in-flight nodes (they run again on resume)."""


SupervisorMessage = StartRun | CancelRun | GraphUpdated | RunFinished | Drain | Interrupt
