"""A node that runs once per item (`for_each`): its list rendered, its block run for each
item with the node's retries and timeout, at most `concurrency` at a time, and the outputs
gathered in order as `{"items": [...], "count": n}`.

Each finished item is recorded through the run's Journal (its row and a `node.item` event
ride with the next commit), so a resumed run runs only the items that had not finished. An
item that fails fails the node, unless the node's on_error handles failures: then its slot
holds `{"error": {...}}`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import anyio
import orjson

from blocks.context import RunContext
from blocks.templating import NO_SECRETS, SecretValues, render_value
from runner.engine.attempt import (
    Failed,
    OutputCap,
    Result,
    Succeeded,
    encode_output,
    error_info,
    now,
    perform,
    prepare,
    within_cap,
)
from runner.engine.node_log import NodeListener, Recorder
from runner.graph.plan import PlanNode
from runner.records import ItemResult

DEFAULT_MAX_ITEMS = 10_000


class ItemRecorder(Recorder, Protocol):
    """A Recorder that also records finished items (the run's Journal)."""

    def item_ended(
        self,
        node_id: str,
        index: int,
        *,
        encoded: bytes | None,
        error: dict[str, Any] | None,
        done: int,
        total: int,
    ) -> None: ...


class ItemsError(ValueError):
    """The node's for_each did not give a list it may run (not a list, or too long)."""


@dataclass(frozen=True, slots=True)
class Items:
    """What a for_each node runs over: its upstream, trigger and ancestors, and its list."""

    upstream: dict[str, Any]
    trigger: Any
    nodes: Mapping[str, Any]
    values: list[Any]
    secrets: Mapping[str, str] = field(default_factory=SecretValues)

    def stored_input(self, node: PlanNode) -> str:
        """The node's input as stored: its params as declared (rendered per item), its
        upstream and trigger, and the list (`for_each`), once."""
        value = {
            "params": node.params,
            "upstream": self.upstream,
            "trigger": self.trigger,
            "for_each": self.values,
        }
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def render_items(
    node: PlanNode,
    upstream: dict[str, Any],
    trigger: Any,
    nodes: Mapping[str, Any],
    *,
    max_items: int,
    secrets: Mapping[str, str] = NO_SECRETS,
) -> Items:
    """The node's for_each, rendered: a list of at most `max_items` items, else ItemsError."""
    context = {"upstream": upstream, "trigger": trigger, "nodes": nodes, "secrets": secrets}
    values = render_value(node.policy.for_each, context, "params.for_each")
    if not isinstance(values, list):
        raise ItemsError(
            f"params.for_each gave {type(values).__name__} {_preview(values)}, not a list"
        )
    if len(values) > max_items:
        raise ItemsError(
            f"params.for_each gave {len(values)} items; a node runs at most {max_items} "
            "(WEFT_MAX_ITEMS)"
        )
    return Items(upstream, trigger, nodes, values, secrets)


def _preview(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class _ItemListener(NodeListener):
    """An item's attempts: its retries and capped outputs are logged; the node's start was
    recorded once, for all its items."""

    def __init__(self, journal: ItemRecorder, node: PlanNode, index: int) -> None:
        super().__init__(journal, node, "")
        self._index = index

    def attempt_started(self, attempt: int, started_at: datetime) -> None:
        pass

    def retrying(self, attempt: int, attempts: int, exc: Exception, delay_s: float) -> None:
        self._journal.log(
            self._node.id,
            "warning",
            f"item {self._index}: attempt {attempt} of {attempts} failed: "
            f"{type(exc).__name__}: {exc}; retrying in {delay_s:.2f} s",
            {"item": self._index, "attempt": attempt, "error": error_info(exc)},
        )


async def perform_items(
    node: PlanNode,
    items: Items,
    *,
    finished: dict[int, ItemResult],
    journal: ItemRecorder,
    context: Callable[[Any, int], RunContext],
    cap: OutputCap,
    started_at: datetime,
) -> Result:
    """Run the block once per item not `finished` yet (a resumed run's committed items);
    the node's result. `context(params, attempt)` makes an attempt's RunContext."""
    total = len(items.values)
    slots: list[Any] = [None] * total
    for index, result in finished.items():
        if index < total:
            slots[index] = result.output if result.error is None else {"error": result.error}
    todo = iter([i for i in range(total) if i not in finished])
    done = sum(1 for index in finished if index < total)
    handled = node.policy.handles_errors
    failure: dict[str, Any] | None = None

    async def one(index: int) -> None:
        nonlocal done, failure
        loop = {"item": items.values[index], "index": index}
        try:
            item_input = prepare(
                node, items.upstream, items.trigger, items.nodes, loop, items.secrets
            )
        except Exception as exc:
            result: Result = Failed(error_info(exc), 1, now())
        else:
            result = await perform(
                node,
                item_input,
                context=lambda attempt: context(item_input.params, attempt),
                cap=dataclasses.replace(cap, suffix=f".{index}"),
                listener=_ItemListener(journal, node, index),
            )
        done += 1
        if isinstance(result, Succeeded):
            slots[index] = result.output
            journal.item_ended(
                node.id, index, encoded=result.encoded, error=None, done=done, total=total
            )
            return
        error = {**result.error, "item": index}
        journal.item_ended(node.id, index, encoded=None, error=error, done=done, total=total)
        if handled:
            slots[index] = {"error": error}
        elif failure is None:
            failure = {**error, "message": f"item {index}: {error['message']}"}
            tg.cancel_scope.cancel()  # fail-fast, as a run does

    async def worker() -> None:
        for index in todo:  # shared: each index is taken by one worker
            if failure is not None:  # the cancellation lands at the next await only
                return
            await one(index)

    async with anyio.create_task_group() as tg:
        for _ in range(min(node.policy.concurrency, total)):
            tg.start_soon(worker)
    if failure is not None:
        return Failed(failure, 1, started_at)
    output, encoded = encode_output({"items": slots, "count": total})
    listener = NodeListener(journal, node, "")
    output, encoded = await within_cap(node, context(None, 1), output, encoded, cap, listener)
    return Succeeded(output, encoded, 1, started_at, now())
