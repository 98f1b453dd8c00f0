"""The execution plan: a validated graph resolved for running. Pure: no I/O."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from blocks.registry import Block, BlockRegistry
from runner.errors import InvalidGraphError
from runner.graph.references import ancestors, mentions_nodes
from runner.graph.shape import Graph, NodePolicy, split_params
from runner.graph.validation import problems_from_validation, validate_graph


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
    # The nodes whose outputs its templates may read as `nodes.<id>`: its ancestors, when
    # its params mention `nodes` at all (else none: no graph walk for the common node).
    sees: frozenset[str] = frozenset()
    # Whether its params may read `secrets` (then they are loaded, and masked in what the
    # run records, for it).
    uses_secrets: bool = False

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


def build_plan(
    graph: Graph | dict[str, Any], registry: BlockRegistry, *, saving: bool = False
) -> ExecutionPlan:
    """Validate and resolve a graph; raises InvalidGraphError listing every problem (and,
    `saving` it, the checks only a graph being saved gets: see validate_graph)."""
    if not isinstance(graph, Graph):
        try:
            graph = Graph.model_validate(graph)
        except ValidationError as exc:
            raise InvalidGraphError(problems_from_validation(exc)) from None
    problems = validate_graph(graph, registry, saving=saving)
    if problems:
        raise InvalidGraphError(problems)
    node_ids = [n.id for n in graph.nodes]
    edges = [PlanEdge(e.from_node, e.to, e.port) for e in graph.edges]
    incoming: dict[str, list[PlanEdge]] = {n: [] for n in node_ids}
    outgoing: dict[str, list[PlanEdge]] = {n: [] for n in node_ids}
    for e in edges:
        incoming[e.target].append(e)
        outgoing[e.source].append(e)
    parents = {n: [e.source for e in incoming[n]] for n in node_ids}
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
            ancestors(n.id, parents) if mentions_nodes(n.params) else frozenset(),
            mentions_nodes(n.params, "secrets"),
        )
    order = topological_order(node_ids, [(e.source, e.target) for e in edges])
    return ExecutionPlan(nodes, tuple(order))


def downstream(plan: ExecutionPlan, node_ids: set[str]) -> set[str]:
    """The nodes and every node reachable from them."""
    found = set(node_ids)
    stack = list(node_ids)
    while stack:
        for edge in plan.nodes[stack.pop()].outgoing:
            if edge.target not in found:
                found.add(edge.target)
                stack.append(edge.target)
    return found
