"""Run and node log lines: published live at once, persisted by the Writer in batches."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import orjson

from runner.json_values import without_nul
from runner.live.bus import EventBus, bounded
from runner.models import LogRecord
from runner.store.writer import Writer

MAX_MESSAGE_CHARS = 10_000


def _jsonable(data: dict[str, Any]) -> dict[str, Any] | None:
    if not data:
        return None
    try:
        encoded = orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:
        return {k: repr(v) for k, v in without_nul(data).items()}
    if b"\\u0000" in encoded:
        return dict(without_nul(data))
    return dict(orjson.loads(encoded))


class RunLog:
    """A run's log: each line is streamed as node.log and queued for PostgreSQL."""

    def __init__(self, writer: Writer, bus: EventBus, run_id: UUID, workflow_id: UUID) -> None:
        self._writer = writer
        self._bus = bus
        self._run_id = run_id
        self._workflow_id = workflow_id

    def add(self, node_id: str | None, level: str, message: str, data: dict[str, Any]) -> None:
        record = LogRecord(
            run_id=self._run_id,
            node_id=node_id,
            ts=datetime.now(UTC),
            level=level,
            message=without_nul(message[:MAX_MESSAGE_CHARS]),
            data=_jsonable(data),
        )
        self._writer.log(record)
        self._bus.publish(
            self._run_id,
            self._workflow_id,
            "node.log",
            {
                "node_id": node_id,
                "level": level,
                "message": record.message,
                **bounded("data", record.data),
            },
        )


class NodeLog:
    """The logger a block gets through its RunContext (the NodeLogger protocol)."""

    def __init__(self, run_log: RunLog, node_id: str | None) -> None:
        self._log = run_log
        self._node_id = node_id

    def debug(self, message: str, **data: Any) -> None:
        self._log.add(self._node_id, "debug", message, data)

    def info(self, message: str, **data: Any) -> None:
        self._log.add(self._node_id, "info", message, data)

    def warning(self, message: str, **data: Any) -> None:
        self._log.add(self._node_id, "warning", message, data)

    def error(self, message: str, **data: Any) -> None:
        self._log.add(self._node_id, "error", message, data)
