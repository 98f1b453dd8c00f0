"""Graphs as the API takes them: nodes, edges and the node policy. Pure: no I/O."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, field_validator

from blocks.templating import is_template, syntax_error

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


POLICY_KEYS = frozenset(
    {"retries", "retry_backoff", "timeout_s", "on_error", "for_each", "concurrency"}
)
MAX_ITEM_CONCURRENCY = 100
# The port of the edges an `on_error: branch` node takes when it fails.
ERROR_PORT = "error"


class OnError(StrEnum):
    """What a node's failure (after its retries) does to its run."""

    FAIL = "fail"  # fail-fast: the run fails
    CONTINUE = "continue"  # recorded failed; its children run on its {"error"} output
    BRANCH = "branch"  # its "error" port edges are taken, the others are not


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
    on_error: OnError = Field(
        default=OnError.FAIL,
        description='On failure: "fail" the run (default); "continue" with the output '
        '{"error": {type, message}}; or "branch": take the edges with port "error" only.',
    )

    for_each: Annotated[
        Any, WithJsonSchema({"anyOf": [{"type": "string"}, {"type": "array"}, {"type": "null"}]})
    ] = Field(
        default=None,
        description="Run the block once per item of this list (a template that renders to "
        "one, e.g. `{{ upstream.fetch.data }}`); `item` and `index` are in its templates; "
        'its output is {"items": [output per item], "count": n}.',
    )
    concurrency: int = Field(
        default=8,
        ge=1,
        le=MAX_ITEM_CONCURRENCY,
        description="With for_each: how many items run at once.",
    )

    @field_validator("for_each")
    @classmethod
    def _a_list_or_a_template(cls, value: Any) -> Any:
        if value is not None and not isinstance(value, str | list):
            raise ValueError("must be a list, or a template that renders to one")
        if isinstance(value, str):
            if not is_template(value):
                raise ValueError("must be a list, or a template that renders to one")
            error = syntax_error(value)
            if error is not None:
                raise ValueError(f"template {error}")
        return value

    @property
    def handles_errors(self) -> bool:
        """Whether the node's failure leaves its run going."""
        return self.on_error is not OnError.FAIL


def split_params(params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A node's params as (the block's own, the node policy's)."""
    own = {k: v for k, v in params.items() if k not in POLICY_KEYS}
    policy = {k: v for k, v in params.items() if k in POLICY_KEYS}
    return own, policy
