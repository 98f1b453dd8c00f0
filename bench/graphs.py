"""The DAG shapes of the suite, as weft graphs (`{"nodes", "edges"}`)."""

from __future__ import annotations

import itertools
from typing import Any

Graph = dict[str, Any]


def _transform(node_id: str) -> dict[str, Any]:
    return {"id": node_id, "type": "transform", "params": {"template": "x"}}


def _delay(node_id: str, seconds: float) -> dict[str, Any]:
    return {"id": node_id, "type": "delay", "params": {"seconds": seconds}}


def _start(node_id: str = "start") -> dict[str, Any]:
    return {"id": node_id, "type": "start"}


def _graph(nodes: list[dict[str, Any]], pairs: list[tuple[str, str]]) -> Graph:
    edges = [{"id": f"e{i}", "from": a, "to": b} for i, (a, b) in enumerate(pairs)]
    return {"nodes": nodes, "edges": edges}


def _chained(ids: list[str]) -> list[tuple[str, str]]:
    return list(itertools.pairwise(ids))


def chain(length: int) -> Graph:
    """`length` trivial transforms in a chain (chain100)."""
    ids = [f"n{i}" for i in range(length)]
    return _graph([_transform(i) for i in ids], _chained(ids))


def fanout(width: int) -> Graph:
    """start → `width` parallel transforms → one join transform (fanout100)."""
    ids = [f"p{i}" for i in range(width)]
    nodes = [_start(), *(_transform(i) for i in ids), _transform("join")]
    return _graph(nodes, [("start", i) for i in ids] + [(i, "join") for i in ids])


def sleepy_fanout(width: int, seconds: float) -> Graph:
    """start → `width` parallel delays → one join transform."""
    ids = [f"d{i}" for i in range(width)]
    nodes = [_start(), *(_delay(i, seconds) for i in ids), _transform("join")]
    return _graph(nodes, [("start", i) for i in ids] + [(i, "join") for i in ids])


def skewed_branches(slow_s: float, fast_s: float, fast_steps: int) -> Graph:
    """start → slow → join and start → f1 → … → fN → join (delays)."""
    fast = [f"f{i + 1}" for i in range(fast_steps)]
    nodes = [
        _start(),
        _delay("slow", slow_s),
        *(_delay(i, fast_s) for i in fast),
        _transform("join"),
    ]
    pairs = [("start", "slow"), ("slow", "join"), *_chained(["start", *fast, "join"])]
    return _graph(nodes, pairs)


# The two delay shapes (ideal ≈ 100 ms and ≈ 300 ms).
SLEEPY_FANOUT = sleepy_fanout(50, 0.1)
SKEWED_BRANCHES = skewed_branches(0.3, 0.1, 3)


def short_chain(transforms: int) -> Graph:
    """start → `transforms` transforms in a chain (3-node runs, webhook graphs)."""
    ids = [f"t{i + 1}" for i in range(transforms)]
    return _graph([_start(), *(_transform(i) for i in ids)], _chained(["start", *ids]))


def delayed_chain(gate_s: float, length: int, seconds: float) -> Graph:
    """start → gate (a delay while subscribers connect) → `length` delays in a chain."""
    ids = [f"n{i + 1}" for i in range(length)]
    nodes = [_start(), _delay("gate", gate_s), *(_delay(i, seconds) for i in ids)]
    return _graph(nodes, _chained(["start", "gate", *ids]))


def single_delay(seconds: float) -> Graph:
    """One delay node (the memory scenario's run)."""
    return _graph([_delay("sleep", seconds)], [])


def parents_of(graph: Graph) -> dict[str, list[str]]:
    """{node id: its parents' ids}, in the graph's node order."""
    parents: dict[str, list[str]] = {node["id"]: [] for node in graph["nodes"]}
    for edge in graph["edges"]:
        parents[edge["to"]].append(edge["from"])
    return parents


def delays_of(graph: Graph) -> dict[str, float]:
    """{node id: seconds} of the graph's delay nodes."""
    return {
        node["id"]: float(node["params"]["seconds"])
        for node in graph["nodes"]
        if node["type"] == "delay"
    }
