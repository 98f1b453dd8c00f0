"""What runs need from their process (RunServices) and the limits they run within."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol
from uuid import UUID, uuid4

import httpx

from blocks.context import ArtifactStore, BlockSettings, SubWorkflows
from runner.engine.items import DEFAULT_MAX_ITEMS
from runner.live.bus import EventBus
from runner.metrics import Metrics
from runner.models import Run
from runner.store.protocol import RunWriter, Store


@dataclass(frozen=True, slots=True)
class RunLimits:
    """Per-run limits from the settings."""

    max_output_bytes: int = 1024 * 1024
    max_items: int = DEFAULT_MAX_ITEMS


class ChildStarter(Protocol):
    """Starts runs for a run's workflow.run nodes (runner/runtime/children.py)."""

    def of(self, parent: Run, mask: Callable[[Any], Any]) -> SubWorkflows:
        """The SubWorkflows a block of `parent` sees; `mask` hides the parent's secrets in
        what a child is given (its payload is stored with it)."""
        ...


class SecretSource(Protocol):
    """The secrets' values by name (runner/secrets.py)."""

    async def values(self) -> dict[str, str]: ...


@dataclass(frozen=True, slots=True)
class RunServices:
    """What runs need from the process: persistence, shared clients, settings."""

    store: Store
    events: EventBus
    writer: RunWriter
    http: httpx.AsyncClient
    artifacts: ArtifactStore
    block_settings: BlockSettings
    limits: RunLimits = RunLimits()
    # This process's name in run leases.
    owner: UUID = dataclasses.field(default_factory=uuid4)
    # Starts the runs that workflow.run nodes ask for (set by the Runtime).
    children: ChildStarter | None = None
    # The secrets' values, for the nodes whose params read `secrets`.
    secrets: SecretSource | None = None
    # The process's metrics (node durations; runner/metrics.py).
    metrics: Metrics | None = None
