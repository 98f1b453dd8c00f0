"""One node's work, without its bookkeeping: render its params, run its block with retries,
backoff and a timeout per attempt, and bring its output under the size cap.

Nothing here records the run's state: each attempt's start and each retry is told to an
AttemptListener (the node's journal), and the result comes back as a value.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import anyio
import orjson

from blocks.context import ArtifactStore, RunContext
from blocks.templating import NO_NODES, NO_SECRETS, render_value
from runner.graph.plan import PlanNode
from runner.json_values import without_nul

RETRY_BACKOFF_CAP_S = 300.0
OUTPUT_PREVIEW_CHARS = 1000


class BlockOutputError(TypeError):
    """The block returned something that is not a JSON object."""


class NodeTimeoutError(TimeoutError):
    """The node's attempt took longer than its timeout_s."""


def now() -> datetime:
    return datetime.now(UTC)


def error_info(exc: BaseException) -> dict[str, Any]:
    """An exception as stored on a node or run: its type and message."""
    message = str(exc) or (type(exc).__doc__ or "").strip().split("\n")[0]
    return {"type": type(exc).__name__, "message": without_nul(message)}


def retry_delay(backoff: float, retry: int) -> float:
    """Seconds before retry number `retry` (1-based): exponential, capped, with jitter."""
    delay: float = min(RETRY_BACKOFF_CAP_S, backoff * 2 ** (retry - 1))
    return delay * random.uniform(0.5, 1.0)


def encode_output(output: Any) -> tuple[dict[str, Any], bytes]:
    """The output as children will see it, and as JSON (what is stored)."""
    if not isinstance(output, dict):
        raise BlockOutputError(f"a block must return a dict, not {type(output).__name__}")
    try:
        encoded = orjson.dumps(output, option=orjson.OPT_NON_STR_KEYS)
    except TypeError as exc:
        raise BlockOutputError(f"the block's output is not JSON: {exc}") from None
    if b"\\u0000" in encoded:  # PostgreSQL cannot store NUL; it becomes U+FFFD
        encoded = orjson.dumps(without_nul(output), option=orjson.OPT_NON_STR_KEYS)
    # Decoded again so that what children see is exactly what was stored.
    decoded = orjson.loads(encoded)
    assert isinstance(decoded, dict)
    return decoded, encoded


@dataclass(frozen=True, slots=True)
class NodeInput:
    """A node ready to run: its validated params, what its block is given (`value`), and
    what is stored as its input (`encoded`: params, upstream and trigger, never `nodes`,
    which a 100-node chain would store 100² times)."""

    params: Any
    value: dict[str, Any]
    encoded: str


def prepare(
    node: PlanNode,
    upstream: dict[str, Any],
    trigger: Any,
    nodes: Mapping[str, Any] = NO_NODES,
    loop: dict[str, Any] | None = None,
    secrets: Mapping[str, str] = NO_SECRETS,
) -> NodeInput:
    """Render the node's params over its upstream, trigger and ancestors (and, for one item
    of a for_each node, `loop`: its `item` and `index`), and validate them.

    Raises what rendering or validation raises: a node error no retry can mend.
    """
    extra = {**(loop or {}), **({"secrets": secrets} if secrets else {})}
    # `secrets` is always there to read (a name it lacks says so), as saving assumes.
    context = {"upstream": upstream, "trigger": trigger, "nodes": nodes, "secrets": secrets}
    context |= loop or {}
    rendered = {
        key: value
        if key in node.block.raw_params
        else render_value(value, context, f"params.{key}")
        for key, value in node.params.items()
    }
    params = node.block.params_model.model_validate(rendered)
    stored = {"params": params.model_dump(mode="json"), "upstream": upstream, "trigger": trigger}
    # An item's input is not stored (its node's is: the list, once).
    encoded = "" if loop else orjson.dumps(stored, option=orjson.OPT_NON_STR_KEYS).decode()
    return NodeInput(params, {**stored, "nodes": nodes, **extra}, encoded)


@dataclass(frozen=True, slots=True)
class Succeeded:
    """The node's output (as children see it and as JSON) and the attempt that made it."""

    output: dict[str, Any]
    encoded: bytes
    attempt: int
    started_at: datetime
    finished_at: datetime


@dataclass(frozen=True, slots=True)
class Failed:
    """The node failed after its retries (or before its first attempt, `attempt` 1)."""

    error: dict[str, Any]
    attempt: int
    started_at: datetime


Result = Succeeded | Failed


class AttemptListener(Protocol):
    """Told of what happens during a node's attempts (the node's journal)."""

    def attempt_started(self, attempt: int, started_at: datetime) -> None: ...

    def retrying(self, attempt: int, attempts: int, exc: Exception, delay_s: float) -> None: ...

    def output_capped(self, size: int, limit: int, artifact_id: str) -> None: ...


@dataclass(frozen=True, slots=True)
class OutputCap:
    """Outputs larger than `max_bytes` of JSON are stored as an artifact instead."""

    max_bytes: int
    artifacts: ArtifactStore
    # Told apart in the artifact's path: an item's output (".3") from its node's.
    suffix: str = ""


async def perform(
    node: PlanNode,
    node_input: NodeInput,
    *,
    context: Callable[[int], RunContext],
    cap: OutputCap,
    listener: AttemptListener,
) -> Result:
    """Run the node's block until an attempt succeeds or its retries are spent.

    `context(attempt)` makes the block's RunContext. Cancellation (of the caller's scope)
    passes through; the result of an attempt that finished is never lost to it.
    """
    policy = node.policy
    attempt = 0
    while True:
        attempt += 1
        started_at = now()
        listener.attempt_started(attempt, started_at)
        try:
            output, encoded = await _attempt(node, node_input, context(attempt))
        except Exception as exc:
            if attempt > policy.retries:
                return Failed(error_info(exc), attempt, started_at)
            delay = retry_delay(policy.retry_backoff, attempt)
            listener.retrying(attempt, policy.retries + 1, exc, delay)
            await anyio.sleep(delay)
            continue
        output, encoded = await within_cap(node, context(attempt), output, encoded, cap, listener)
        return Succeeded(output, encoded, attempt, started_at, now())


async def within_cap(
    node: PlanNode,
    ctx: RunContext,
    output: dict[str, Any],
    encoded: bytes,
    cap: OutputCap,
    listener: AttemptListener,
) -> tuple[dict[str, Any], bytes]:
    """The output, or (over the cap) a reference to the artifact that now holds it."""
    if len(encoded) <= cap.max_bytes:
        return output, encoded
    with anyio.CancelScope(shield=True):  # the work succeeded: keep its output
        capped, capped_encoded = await _as_artifact(node, ctx, encoded, cap)
    listener.output_capped(len(encoded), cap.max_bytes, capped["artifact_id"])
    return capped, capped_encoded


async def _attempt(
    node: PlanNode, node_input: NodeInput, ctx: RunContext
) -> tuple[dict[str, Any], bytes]:
    with anyio.move_on_after(node.timeout_s) as timeout:
        return encode_output(await node.block.fn(node_input.value, ctx))
    assert timeout.cancelled_caught
    raise NodeTimeoutError(
        f"attempt {ctx.attempt} took longer than its timeout of {node.timeout_s:g} s"
    )


async def _as_artifact(
    node: PlanNode, ctx: RunContext, encoded: bytes, cap: OutputCap
) -> tuple[dict[str, Any], bytes]:
    """An output over the cap is stored as an artifact; the node's output refers to it."""
    stored = await cap.artifacts.put(
        run_id=ctx.run_id,
        node_id=node.id,
        path=f"weft-outputs/{ctx.run_id}/{node.id}{cap.suffix}.json",
        data=encoded,
        content_type="application/json",
    )
    output = {
        "truncated": True,
        "artifact_id": str(stored.id),
        "uri": stored.uri,
        "size": stored.size,
        "preview": encoded[:OUTPUT_PREVIEW_CHARS].decode(errors="ignore"),
    }
    return output, orjson.dumps(output)
