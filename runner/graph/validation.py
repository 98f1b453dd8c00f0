"""Graph validation: every problem of a graph, each naming its node or edge. Pure: no I/O.

A graph is valid when ids are unique, every edge joins two existing nodes, there are no
self-loops or cycles, every type is a registered block and every node's params fit that
block's model.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from blocks.registry import BlockRegistry
from blocks.templating import is_template, syntax_error, undeclared_names
from runner.errors import Problem
from runner.graph.references import ancestors, read_nodes, template_sources
from runner.graph.shape import ERROR_PORT, Graph, Node, NodePolicy, OnError, split_params


def validate_graph(graph: Graph, registry: BlockRegistry, *, saving: bool = False) -> list[Problem]:
    """Every problem of the graph; empty when it is valid.

    `saving`: also refuse what a graph being saved must not hold, though a stored one that
    holds it still runs (a template reading a name it will not have, on a branch that may
    never be taken): a stricter check must not stop workflows saved before it.
    """
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
        problems.extend(_node_problems(node, registry, saving))
    for edge in graph.edges:
        source = nodes.get(edge.from_node)
        block = registry.get(source.type) if source is not None else None
        if edge.port == ERROR_PORT and source is not None and block is not None:
            if _on_error(source) is not OnError.BRANCH:
                problems.append(
                    Problem(
                        "unknown_port",
                        f"edge {edge.id!r}: port {ERROR_PORT!r} is taken only from a node "
                        f'with "on_error": "branch" ({source.id!r} has not)',
                        edge_id=edge.id,
                        field="port",
                    )
                )
        elif edge.port is not None and block is not None and block.ports is not None:
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
    proper = _proper_edges(graph, nodes)
    problems.extend(_reference_problems(nodes, proper, registry))
    cycle = _find_cycle(list(nodes), proper)
    if cycle:
        problems.append(
            Problem(
                "cycle",
                "the graph has a cycle: " + " → ".join([*cycle, cycle[0]]),
                node_id=cycle[0],
            )
        )
    return problems


def _node_problems(node: Node, registry: BlockRegistry, saving: bool) -> list[Problem]:
    block = registry.get(node.type)
    if block is None:
        return [
            Problem("unknown_block", f"node {node.id!r}: unknown block type {node.type!r}", node.id)
        ]
    own, policy = split_params(node.params)
    problems = [
        Problem(
            "invalid_template",
            f"node {node.id!r}: params.{path}: template {error}",
            node_id=node.id,
            field=f"params.{path}",
        )
        for path, error in _template_errors(own, block.raw_params)
    ]
    if saving:
        problems.extend(_scope_problems(node, own, policy, block.raw_params))
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


# What a param's template reads (runner/engine/attempt.py renders them over these), and
# what a for_each node's templates read besides. A block's raw params (rendered by the
# block itself, over what it chooses) are not checked here.
TEMPLATE_SCOPE = frozenset({"upstream", "trigger", "nodes", "secrets"})
ITEM_SCOPE = frozenset({"item", "index"})
_READ_ORDER = ["upstream", "trigger", "nodes", "secrets", "item", "index"]


def _scope_problems(
    node: Node, own: dict[str, Any], policy: dict[str, Any], raw_params: frozenset[str]
) -> list[Problem]:
    """A name a template reads that is not there when it renders: it would fail the node
    at run time (`{{ itme }}`, `item` without for_each, `params` in a param)."""
    looped = policy.get("for_each") is not None
    rendered = {key: value for key, value in own.items() if key not in raw_params}
    scope = TEMPLATE_SCOPE | ITEM_SCOPE if looped else TEMPLATE_SCOPE
    checks = [(path, source, scope) for path, source in template_sources(rendered, frozenset())]
    # for_each (a template, or a list of them) is rendered before there is an item
    for_each = template_sources({"for_each": policy.get("for_each")}, frozenset())
    checks += [(path, source, TEMPLATE_SCOPE) for path, source in for_each]
    problems = []
    for path, source, readable in checks:
        for name in sorted(undeclared_names(source) - readable):
            if name in ITEM_SCOPE and path.split(".")[0] == "for_each":
                why = f"{name!r} is not defined in for_each itself, which makes the items"
            elif name in ITEM_SCOPE and not looped:
                why = f"{name!r} is defined only in a node with for_each"
            else:
                *most, last = sorted(readable, key=_READ_ORDER.index)
                reads = f"{', '.join(most)} and {last}"
                why = f"{name!r} is not defined here (a template reads {reads})"
            problems.append(
                Problem(
                    "invalid_reference",
                    f"node {node.id!r}: params.{path}: {why}",
                    node_id=node.id,
                    field=f"params.{path}",
                )
            )
    return problems


def _on_error(node: Node) -> OnError | None:
    try:
        return OnError(node.params.get("on_error", OnError.FAIL))
    except ValueError:  # reported with the node's policy
        return None


def _reference_problems(
    nodes: dict[str, Node], edges: list[tuple[str, str]], registry: BlockRegistry
) -> list[Problem]:
    """`nodes.<id>` in a template must name an ancestor: only those have run before it."""
    parents: dict[str, list[str]] = {}
    for a, b in edges:
        parents.setdefault(b, []).append(a)
    problems = []
    for node in nodes.values():
        block = registry.get(node.type)
        if block is None or "nodes" not in str(node.params):
            continue
        named, _ = read_nodes(node.params, block.raw_params)
        if not named:
            continue
        upstream = ancestors(node.id, parents)
        for path, ref in named:
            if ref in upstream:
                continue
            why = (
                f"there is no node {ref!r}"
                if ref not in nodes
                else f"{ref!r} is not upstream of {node.id!r}, so it has not run before it"
            )
            problems.append(
                Problem(
                    "invalid_reference",
                    f"node {node.id!r}: params.{path}: nodes.{ref}: {why}",
                    node_id=node.id,
                    field=f"params.{path}",
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


def problems_from_validation(exc: ValidationError) -> list[Problem]:
    """A pydantic error on the graph's shape, as problems (naming the node where known)."""
    problems = []
    for error in exc.errors(include_url=False):
        loc = error["loc"]
        where = ".".join(str(p) for p in loc)
        problems.append(Problem("invalid_shape", f"{where}: {error['msg']}", field=where or None))
    return problems
