"""Graphs: their shape, validation, ordering and the execution plan. Pure: no I/O.

A graph is nodes (id, type, params) and edges (from → to, with an optional port). It is
valid when ids are unique, every edge joins two existing nodes, there are no self-loops or
cycles, every type is a registered block and every node's params fit that block's model.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from blocks.registry import Block, BlockRegistry
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


@dataclass(frozen=True, slots=True)
class Problem:
    """One reason a graph is invalid, naming the node or edge concerned."""

    code: str
    message: str
    node_id: str | None = None
    edge_id: str | None = None
    field: str | None = None

    def to_json(self) -> dict[str, Any]:
        fields = {"node_id": self.node_id, "edge_id": self.edge_id, "field": self.field}
        return {
            "code": self.code,
            "message": self.message,
            **{k: v for k, v in fields.items() if v is not None},
        }


class InvalidGraphError(ValueError):
    """The graph is invalid; `problems` lists every reason."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(p.message for p in problems))
        self.problems = problems


def validate_graph(graph: Graph, registry: BlockRegistry) -> list[Problem]:
    """Every problem of the graph; empty when it is valid."""
    problems: list[Problem] = []
    nodes: dict[str, Node] = {}
    for node in graph.nodes:
        if node.id in nodes:
            problems.append(
                Problem("duplicate_node_id", f"node id {node.id!r} is used twice", node_id=node.id)
            )
        else:
            nodes[node.id] = node
    edge_ids: set[str] = set()
    for edge in graph.edges:
        if edge.id in edge_ids:
            problems.append(
                Problem("duplicate_edge_id", f"edge id {edge.id!r} is used twice", edge_id=edge.id)
            )
        edge_ids.add(edge.id)
        for end, node_id in (("from", edge.from_node), ("to", edge.to)):
            if node_id not in nodes:
                problems.append(
                    Problem(
                        "unknown_node",
                        f"edge {edge.id!r} {end} {node_id!r}: no such node",
                        edge_id=edge.id,
                        field=end,
                    )
                )
        if edge.from_node == edge.to:
            problems.append(
                Problem(
                    "self_loop",
                    f"edge {edge.id!r} joins node {edge.to!r} to itself",
                    edge_id=edge.id,
                    node_id=edge.to,
                )
            )
    for node in nodes.values():
        problems.extend(_node_problems(node, registry))
    for edge in graph.edges:
        source = nodes.get(edge.from_node)
        block = registry.get(source.type) if source is not None else None
        if edge.port is not None and block is not None and block.ports is not None:
            if edge.port not in block.ports:
                problems.append(
                    Problem(
                        "unknown_port",
                        f"edge {edge.id!r}: {block.type} has no port {edge.port!r} "
                        f"(ports: {', '.join(block.ports)})",
                        edge_id=edge.id,
                        field="port",
                    )
                )
    cycle = _find_cycle(list(nodes), _proper_edges(graph, nodes))
    if cycle:
        problems.append(
            Problem(
                "cycle",
                "the graph has a cycle: " + " → ".join([*cycle, cycle[0]]),
                node_id=cycle[0],
            )
        )
    return problems


def _node_problems(node: Node, registry: BlockRegistry) -> list[Problem]:
    block = registry.get(node.type)
    if block is None:
        return [
            Problem("unknown_block", f"node {node.id!r}: unknown block type {node.type!r}", node.id)
        ]
    own, policy = split_params(node.params)
    problems = [
        Problem(
            "invalid_template",
            f"node {node.id!r}: params.{path}: template does not compile: {error}",
            node_id=node.id,
            field=f"params.{path}",
        )
        for path, error in _template_errors(own, block.raw_params)
    ]
    try:
        NodePolicy.model_validate(policy)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            location = ".".join(str(part) for part in error["loc"])
            problems.append(
                Problem(
                    "invalid_params",
                    f"node {node.id!r}: params.{location}: {error['msg']}",
                    node_id=node.id,
                    field=f"params.{location}",
                )
            )
    try:
        block.params_model.model_validate(own)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            location = ".".join(str(part) for part in error["loc"])
            # A value rendered before the block runs is checked again once rendered.
            rendered_later = (
                error["type"] not in ("missing", "extra_forbidden")
                and bool(error["loc"])
                and error["loc"][0] not in block.raw_params
                and is_template(_lookup(own, error["loc"]))
            )
            if rendered_later:
                continue
            problems.append(
                Problem(
                    "invalid_params",
                    f"node {node.id!r}: params.{location}: {error['msg']}",
                    node_id=node.id,
                    field=f"params.{location}" if location else "params",
                )
            )
    return problems


def _template_errors(params: dict[str, Any], raw_params: frozenset[str]) -> list[tuple[str, str]]:
    """Syntax errors of templated values the runner renders (raw ones the block checks)."""
    errors: list[tuple[str, str]] = []

    def visit(value: Any, path: str) -> None:
        if isinstance(value, str):
            if is_template(value):
                error = syntax_error(value)
                if error is not None:
                    errors.append((path, error))
        elif isinstance(value, dict):
            for key, item in value.items():
                visit(item, f"{path}.{key}")
        elif isinstance(value, list):
            for i, item in enumerate(value):
                visit(item, f"{path}.{i}")

    for key, value in params.items():
        if key not in raw_params:
            visit(value, key)
    return errors


def _lookup(value: Any, loc: tuple[int | str, ...]) -> Any:
    for part in loc:
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and isinstance(part, int) and 0 <= part < len(value):
            value = value[part]
        else:
            return None
    return value


def _proper_edges(graph: Graph, nodes: dict[str, Node]) -> list[tuple[str, str]]:
    return [
        (e.from_node, e.to)
        for e in graph.edges
        if e.from_node in nodes and e.to in nodes and e.from_node != e.to
    ]


def _find_cycle(node_ids: list[str], edges: list[tuple[str, str]]) -> list[str]:
    children: dict[str, list[str]] = {n: [] for n in node_ids}
    for a, b in edges:
        children[a].append(b)
    white, grey, black = 0, 1, 2
    colour = dict.fromkeys(node_ids, white)
    for root in node_ids:
        if colour[root] != white:
            continue
        stack: list[tuple[str, int]] = [(root, 0)]
        path: list[str] = [root]
        colour[root] = grey
        while stack:
            node, i = stack[-1]
            if i < len(children[node]):
                stack[-1] = (node, i + 1)
                child = children[node][i]
                if colour[child] == grey:
                    return path[path.index(child) :]
                if colour[child] == white:
                    colour[child] = grey
                    stack.append((child, 0))
                    path.append(child)
            else:
                colour[node] = black
                stack.pop()
                path.pop()
    return []


def topological_order(node_ids: list[str], edges: list[tuple[str, str]]) -> list[str]:
    """Kahn's order, stable in the nodes' listed order; assumes an acyclic graph."""
    indegree = dict.fromkeys(node_ids, 0)
    children: dict[str, list[str]] = {n: [] for n in node_ids}
    for a, b in edges:
        children[a].append(b)
        indegree[b] += 1
    position = {n: i for i, n in enumerate(node_ids)}
    ready = deque(n for n in node_ids if indegree[n] == 0)
    order: list[str] = []
    while ready:
        node = ready.popleft()
        order.append(node)
        for child in sorted(children[node], key=position.__getitem__):
            indegree[child] -= 1
            if indegree[child] == 0:
                ready.append(child)
    return order


@dataclass(frozen=True, slots=True)
class PlanEdge:
    """An edge as the plan sees it."""

    source: str
    target: str
    port: str | None


@dataclass(frozen=True, slots=True)
class PlanNode:
    """A node with its resolved block and its neighbours."""

    id: str
    type: str
    params: dict[str, Any]
    block: Block
    incoming: tuple[PlanEdge, ...]
    outgoing: tuple[PlanEdge, ...]
    policy: NodePolicy

    @property
    def timeout_s(self) -> float:
        """Seconds one attempt may take."""
        return self.policy.timeout_s or self.block.default_timeout_s

    @property
    def parents(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(e.source for e in self.incoming))


@dataclass(frozen=True, slots=True)
class ExecutionPlan:
    """A validated graph resolved for running: order, neighbours, block callables."""

    nodes: dict[str, PlanNode]
    order: tuple[str, ...]

    @property
    def roots(self) -> list[str]:
        return [n for n in self.order if not self.nodes[n].incoming]


def build_plan(graph: Graph | dict[str, Any], registry: BlockRegistry) -> ExecutionPlan:
    """Validate and resolve a graph; raises InvalidGraphError listing every problem."""
    if not isinstance(graph, Graph):
        try:
            graph = Graph.model_validate(graph)
        except ValidationError as exc:
            raise InvalidGraphError(problems_from_validation(exc)) from None
    problems = validate_graph(graph, registry)
    if problems:
        raise InvalidGraphError(problems)
    node_ids = [n.id for n in graph.nodes]
    edges = [PlanEdge(e.from_node, e.to, e.port) for e in graph.edges]
    incoming: dict[str, list[PlanEdge]] = {n: [] for n in node_ids}
    outgoing: dict[str, list[PlanEdge]] = {n: [] for n in node_ids}
    for e in edges:
        incoming[e.target].append(e)
        outgoing[e.source].append(e)
    nodes = {}
    for n in graph.nodes:
        block = registry.get(n.type)
        assert block is not None  # validated above
        own, policy = split_params(n.params)
        nodes[n.id] = PlanNode(
            n.id,
            n.type,
            own,
            block,
            tuple(incoming[n.id]),
            tuple(outgoing[n.id]),
            NodePolicy.model_validate(policy),
        )
    order = topological_order(node_ids, [(e.source, e.target) for e in edges])
    return ExecutionPlan(nodes, tuple(order))


def problems_from_validation(exc: ValidationError) -> list[Problem]:
    """A pydantic error on the graph's shape, as problems (naming the node where known)."""
    problems = []
    for error in exc.errors(include_url=False):
        loc = error["loc"]
        where = ".".join(str(p) for p in loc)
        problems.append(Problem("invalid_shape", f"{where}: {error['msg']}", field=where or None))
    return problems
