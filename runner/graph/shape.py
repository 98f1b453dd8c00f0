"""Graphs as the API takes them: nodes, edges and the node policy. Pure: no I/O."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

ID_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,127}$"


class Node(BaseModel):
    """A node of a graph; editor-only fields (position, label, …) are kept as sent."""

    model_config = ConfigDict(extra="allow")
    id: str = Field(pattern=ID_PATTERN)
    type: str = Field(min_length=1, max_length=200)
    params: dict[str, Any] = Field(default_factory=dict)


class Edge(BaseModel):
    """An edge from one node to another; `port` matters on edges leaving a branching block."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)
    id: str = Field(pattern=ID_PATTERN)
    from_node: str = Field(alias="from")
    to: str
    port: str | None = None


class Graph(BaseModel):
    """A workflow's graph."""

    model_config = ConfigDict(extra="allow")
    nodes: list[Node] = Field(default_factory=list, max_length=10_000)
    edges: list[Edge] = Field(default_factory=list, max_length=50_000)

    def to_json(self) -> dict[str, Any]:
        """The graph as the client sent it (aliases, editor fields), for storage."""
        return self.model_dump(by_alias=True, exclude_unset=True, mode="json")


POLICY_KEYS = frozenset({"retries", "retry_backoff", "timeout_s"})


class NodePolicy(BaseModel):
    """How a node is run, whatever its block: params every node accepts beside its own."""

    model_config = ConfigDict(extra="forbid")
    retries: int = Field(default=0, ge=0, le=20, description="Attempts after the first.")
    retry_backoff: float = Field(
        default=1.0,
        ge=0,
        le=3600,
        description="Seconds before the first retry; doubles each retry (capped, jittered).",
    )
    timeout_s: float | None = Field(
        default=None,
        gt=0,
        le=86_400,
        description="Seconds an attempt may take; the block's default when omitted.",
    )


def split_params(params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A node's params as (the block's own, the node policy's)."""
    own = {k: v for k, v in params.items() if k not in POLICY_KEYS}
    policy = {k: v for k, v in params.items() if k in POLICY_KEYS}
    return own, policy
