"""The node runs, items and log lines of the MemoryStore (runner/store/memory.py), read as
PostgreSQL's queries would give them."""

from __future__ import annotations

import dataclasses
from typing import Any
from uuid import UUID

from runner.models import Run
from runner.records import ItemResult, LogLine, NodeRun


class MemoryNodes:
    """Each run's node runs (`nodes`), for_each items (`items`) and log lines (`logs`)."""

    nodes: dict[UUID, dict[str, NodeRun]]
    items: dict[tuple[UUID, str], dict[int, ItemResult]]
    logs: list[tuple[UUID, LogLine]]

    async def get_run(self, run_id: UUID) -> Run:
        raise NotImplementedError

    def set_node(self, run_id: UUID, node_id: str, **changes: Any) -> None:
        nodes = self.nodes.get(run_id)
        if nodes is not None and node_id in nodes:
            nodes[node_id] = dataclasses.replace(nodes[node_id], **changes)

    async def list_node_runs(self, run_id: UUID) -> list[NodeRun]:
        await self.get_run(run_id)
        nodes = list(self.nodes.get(run_id, {}).values())
        for i, node in enumerate(nodes):  # a for_each node's (done, total) items
            listed = node.input.get("for_each") if isinstance(node.input, dict) else None
            if isinstance(listed, list):
                done = len(self.items.get((run_id, node.node_id), {}))
                nodes[i] = dataclasses.replace(node, items=(done, len(listed)))
        return nodes

    async def list_node_items(self, run_id: UUID, node_id: str) -> dict[int, ItemResult]:
        return dict(self.items.get((run_id, node_id), {}))

    async def list_logs(
        self, run_id: UUID, *, after: int, limit: int, node_id: str | None = None
    ) -> list[LogLine]:
        await self.get_run(run_id)
        lines = [
            line
            for owner, line in self.logs
            if owner == run_id and line.id > after and node_id in (None, line.node_id)
        ]
        return lines[:limit]
