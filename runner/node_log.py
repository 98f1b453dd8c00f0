"""Node and run log lines: buffered in memory, written in batches."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import anyio
import orjson

from runner.events import EventBus, bounded
from runner.json_values import without_nul
from runner.store import LogRecord, Store

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


class LogBuffer:
    """A run's pending log lines; `flush` writes them in one round trip."""

    def __init__(self, store: Store, bus: EventBus, run_id: UUID, workflow_id: UUID) -> None:
        self._store = store
        self._bus = bus
        self._run_id = run_id
        self._workflow_id = workflow_id
        self._pending: list[LogRecord] = []

    def add(self, node_id: str | None, level: str, message: str, data: dict[str, Any]) -> None:
        record = LogRecord(
            run_id=self._run_id,
            node_id=node_id,
            ts=datetime.now(UTC),
            level=level,
            message=without_nul(message[:MAX_MESSAGE_CHARS]),
            data=_jsonable(data),
        )
        self._pending.append(record)
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

    async def flush(self) -> None:
        if not self._pending:
            return
        records, self._pending = self._pending, []
        # Shielded: a flush cut off halfway would lose the lines it took.
        with anyio.CancelScope(shield=True):
            await self._store.insert_logs(records)


class NodeLog:
    """The logger a block gets through its RunContext (the NodeLogger protocol)."""

    def __init__(self, buffer: LogBuffer, node_id: str | None) -> None:
        self._buffer = buffer
        self._node_id = node_id

    def debug(self, message: str, **data: Any) -> None:
        self._buffer.add(self._node_id, "debug", message, data)

    def info(self, message: str, **data: Any) -> None:
        self._buffer.add(self._node_id, "info", message, data)

    def warning(self, message: str, **data: Any) -> None:
        self._buffer.add(self._node_id, "warning", message, data)

    def error(self, message: str, **data: Any) -> None:
        self._buffer.add(self._node_id, "error", message, data)
