"""What a node says while it runs, recorded in its run's Journal: the block's log lines
(NodeLog, the NodeLogger a block gets) and its attempts' starts and retries (NodeListener)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from runner.engine.attempt import error_info
from runner.graph.plan import PlanNode


class Recorder(Protocol):
    """Where a node's log lines and attempt starts go: its run's Journal, or a trial's
    collector (runner/engine/trial.py)."""

    def log(
        self, node_id: str | None, level: str, message: str, data: dict[str, Any] | None = None
    ) -> None: ...

    def node_started(
        self, node_id: str, node_type: str, attempt: int, started_at: datetime, input: str
    ) -> None: ...


class NodeLog:
    """The logger a block gets through its RunContext (the NodeLogger protocol)."""

    def __init__(self, journal: Recorder, node_id: str | None) -> None:
        self._journal = journal
        self._node_id = node_id

    def debug(self, message: str, **data: Any) -> None:
        self._journal.log(self._node_id, "debug", message, data)

    def info(self, message: str, **data: Any) -> None:
        self._journal.log(self._node_id, "info", message, data)

    def warning(self, message: str, **data: Any) -> None:
        self._journal.log(self._node_id, "warning", message, data)

    def error(self, message: str, **data: Any) -> None:
        self._journal.log(self._node_id, "error", message, data)


class NodeListener:
    """Records a node's attempts in the journal (the AttemptListener of runner.engine.attempt)."""

    def __init__(self, journal: Recorder, node: PlanNode, encoded_input: str) -> None:
        self._journal = journal
        self._node = node
        self._input = encoded_input

    def attempt_started(self, attempt: int, started_at: datetime) -> None:
        self._journal.node_started(self._node.id, self._node.type, attempt, started_at, self._input)

    def retrying(self, attempt: int, attempts: int, exc: Exception, delay_s: float) -> None:
        self._journal.log(
            self._node.id,
            "warning",
            f"attempt {attempt} of {attempts} failed: {type(exc).__name__}: {exc}; "
            f"retrying in {delay_s:.2f} s",
            {"attempt": attempt, "error": error_info(exc)},
        )

    def output_capped(self, size: int, limit: int, artifact_id: str) -> None:
        self._journal.log(
            self._node.id,
            "warning",
            f"output of {size} bytes is over the {limit}-byte cap: stored as artifact "
            f"{artifact_id}",
            {"artifact_id": artifact_id},
        )
