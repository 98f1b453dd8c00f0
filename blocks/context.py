"""What a block sees of the world: its RunContext and the interfaces behind it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, TypeVar
from uuid import UUID

import httpx
from pydantic import BaseModel

P = TypeVar("P", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class StoredArtifact:
    """An artifact written by a block: its row id, where it lives, and its size."""

    id: UUID
    uri: str
    size: int
    content_type: str


class ArtifactStore(Protocol):
    """Stores a node's artifact bytes and records the artifact row."""

    async def put(
        self, *, run_id: UUID, node_id: str, path: str, data: bytes, content_type: str
    ) -> StoredArtifact: ...


class NodeLogger(Protocol):
    """A per-node logger whose records are persisted with the run (and streamed)."""

    def debug(self, message: str, **data: Any) -> None: ...
    def info(self, message: str, **data: Any) -> None: ...
    def warning(self, message: str, **data: Any) -> None: ...
    def error(self, message: str, **data: Any) -> None: ...


@dataclass(frozen=True, slots=True)
class ChildRun:
    """A finished run of another workflow, started by a block (workflow.run)."""

    run_id: UUID
    status: str
    outputs: dict[str, Any] | None
    error: dict[str, Any] | None


class SubWorkflows(Protocol):
    """Runs other workflows for a block, as children of the block's run."""

    async def run(self, workflow_id: UUID, payload: Any, *, key: str) -> ChildRun:
        """Start a run of the workflow with `payload` as its trigger payload and wait for it
        to finish. `key` names the call within the block's run: the same key gives the same
        child (a resumed run waits for the child it started, it does not start another)."""
        ...


@dataclass(frozen=True, slots=True)
class RunContext:
    """Everything a block may use while it runs: ids, shared clients and its logger."""

    run_id: UUID
    workflow_id: UUID
    node_id: str
    attempt: int
    timeout_s: float
    params: BaseModel
    http: httpx.AsyncClient
    artifacts: ArtifactStore
    log: NodeLogger
    settings: BlockSettings
    # Other workflows, for workflow.run (None where runs cannot start runs).
    workflows: SubWorkflows | None = None

    def params_as(self, model: type[P]) -> P:
        """The node's validated params, typed as the block's params model."""
        if not isinstance(self.params, model):
            raise TypeError(f"params are {type(self.params).__name__}, not {model.__name__}")
        return self.params


@dataclass(frozen=True, slots=True)
class BlockSettings:
    """Settings some blocks read (LLM endpoint and key); injected, never read from os.environ."""

    openai_api_key: str | None = None
    openai_base_url: str = "https://api.openai.com/v1"
    openai_model: str = "gpt-4o-mini"
