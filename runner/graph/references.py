"""What a node's templates read of other nodes (`nodes.<id>`), and which nodes it may read:
its ancestors. Pure: no I/O."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from blocks.templating import is_template, node_references


def template_sources(
    params: dict[str, Any], raw_params: frozenset[str]
) -> Iterator[tuple[str, str]]:
    """(path, source) of every template in the params; a raw param (one its block renders
    itself, such as a condition) is a template even without `{{ }}`."""

    def visit(value: Any, path: str, raw: bool) -> Iterator[tuple[str, str]]:
        if isinstance(value, str):
            if raw or is_template(value):
                yield path, value
        elif isinstance(value, dict):
            for key, item in value.items():
                yield from visit(item, f"{path}.{key}", raw)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                yield from visit(item, f"{path}.{i}", raw)

    for key, value in params.items():
        yield from visit(value, key, key in raw_params)


def read_nodes(
    params: dict[str, Any], raw_params: frozenset[str], name: str = "nodes"
) -> tuple[list[tuple[str, str]], bool]:
    """The (path, node id) pairs the params read as `nodes.<id>` (or `secrets.<name>` with
    `name`), and whether they also use it without naming one (a loop, a computed key)."""
    named: list[tuple[str, str]] = []
    dynamic = False
    for path, source in template_sources(params, raw_params):
        if name not in source:  # the common case, without parsing
            continue
        expression = not is_template(source)
        ids, other = node_references(source, expression=expression, name=name)
        named.extend((path, node_id) for node_id in sorted(ids))
        dynamic = dynamic or other
    return named, dynamic


def mentions_nodes(params: dict[str, Any], word: str = "nodes") -> bool:
    """Whether any string in the params mentions `word` (cheap: no parsing)."""

    def visit(value: Any) -> bool:
        if isinstance(value, str):
            return word in value
        if isinstance(value, dict):
            return any(visit(v) for v in value.values())
        if isinstance(value, list):
            return any(visit(v) for v in value)
        return False

    return visit(params)


def ancestors(node_id: str, parents: Mapping[str, list[str]]) -> frozenset[str]:
    """Every node from which `node_id` can be reached (cycles tolerated)."""
    seen: set[str] = set()
    stack = list(parents.get(node_id, ()))
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        stack.extend(parents.get(current, ()))
    seen.discard(node_id)
    return frozenset(seen)
