"""The messages a Supervisor receives: small frozen records, dispatched with `match`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from runner.models import Run


@dataclass(frozen=True, slots=True)
class StartRun:
    """Execute this (already stored, pending) run."""

    run: Run


@dataclass(frozen=True, slots=True)
class GraphUpdated:
    """The workflow's graph was overwritten; rebuild the cached plan."""

    graph: dict[str, Any]


@dataclass(frozen=True, slots=True)
class RunFinished:
    """A run task of this supervisor has ended."""

    run_id: UUID


@dataclass(frozen=True, slots=True)
class Shutdown:
    """Stop taking runs; the supervisor ends when its runs have."""


SupervisorMessage = StartRun | GraphUpdated | RunFinished | Shutdown
