"""The block registry: type name → block function, params model and branching ports."""

from __future__ import annotations

import builtins
import dataclasses
import inspect
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.from_thread
import anyio.to_thread
from anyio.lowlevel import RunVar
from pydantic import BaseModel

from blocks.context import NodeLogger, RunContext

BlockFn = Callable[[dict[str, Any], RunContext], Awaitable[dict[str, Any]]]
# A blocking block's function: plain `def`, run in a worker thread.
BlockingFn = Callable[[dict[str, Any], RunContext], dict[str, Any]]

# Worker threads that blocking blocks share (beside anyio's default pool, which serves
# the rest of the process): enough to keep a few CPU-heavy nodes going on a small dyno.
BLOCKING_THREADS = 8

# How long one attempt of a node may take unless its params or its block say otherwise.
DEFAULT_TIMEOUT_S = 300.0


class DuplicateBlockError(ValueError):
    """A block type name was registered twice."""


@dataclass(frozen=True, slots=True)
class Block:
    """A registered block.

    `raw_params` are params the block renders itself over the node input (a template, a
    condition), so the runner passes them through unrendered. `ports` is set on branching
    blocks: the output's "port" names the edge port taken.
    """

    type: str
    params_model: builtins.type[BaseModel]
    fn: BlockFn
    description: str = ""
    raw_params: frozenset[str] = frozenset()
    ports: tuple[str, ...] | None = None
    default_timeout_s: float = DEFAULT_TIMEOUT_S
    blocking: bool = False

    @property
    def branching(self) -> bool:
        return self.ports is not None

    def params_schema(self) -> dict[str, Any]:
        """The params JSON Schema shown in the editor's palette."""
        schema: dict[str, Any] = self.params_model.model_json_schema()
        return schema


def block(
    type_name: str,
    params: type[BaseModel],
    *,
    raw_params: Iterable[str] = (),
    ports: tuple[str, ...] | None = None,
    default_timeout_s: float = DEFAULT_TIMEOUT_S,
    blocking: bool = False,
) -> Callable[[Callable[..., Any]], Block]:
    """Declare a block: turns `async def run(input, ctx) -> dict` into a `Block`.

    With `blocking=True` the function is a plain `def` that may block or compute for long:
    it runs in a worker thread, so the event loop (every other run, every request) never
    waits for it. Its `ctx.log` may be used from that thread. A timeout or cancel stops
    waiting for it; the thread itself runs to its end (Python cannot stop a thread).

    The declared block is registered by adding it to a BlockRegistry (or by naming its
    module in WEFT_BLOCKS), so no registry is global and tests can build their own.
    """

    def decorate(fn: Callable[..., Any]) -> Block:
        if blocking == inspect.iscoroutinefunction(fn):
            need = "a plain `def`" if blocking else "an `async def` (or pass blocking=True)"
            raise TypeError(f"block {type_name!r}: {fn.__name__} must be {need}")
        return Block(
            type=type_name,
            params_model=params,
            fn=_in_a_thread(fn) if blocking else fn,
            description=(fn.__doc__ or "").strip().split("\n")[0],
            raw_params=frozenset(raw_params),
            ports=ports,
            default_timeout_s=default_timeout_s,
            blocking=blocking,
        )

    return decorate


# One limiter per event loop (a RunVar), made on first use.
_blocking_threads: RunVar[anyio.CapacityLimiter] = RunVar("weft_blocking_threads")


def _in_a_thread(fn: BlockingFn) -> BlockFn:
    async def run(input: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        try:
            limiter = _blocking_threads.get()
        except LookupError:
            limiter = anyio.CapacityLimiter(BLOCKING_THREADS)
            _blocking_threads.set(limiter)
        threaded = dataclasses.replace(ctx, log=_LoopLog(ctx.log))
        return await anyio.to_thread.run_sync(
            fn, input, threaded, abandon_on_cancel=True, limiter=limiter
        )

    return run


class _LoopLog:
    """A NodeLogger usable from a worker thread: each line is handed to the event loop."""

    def __init__(self, log: NodeLogger) -> None:
        self._log = log

    def debug(self, message: str, **data: Any) -> None:
        anyio.from_thread.run_sync(lambda: self._log.debug(message, **data))

    def info(self, message: str, **data: Any) -> None:
        anyio.from_thread.run_sync(lambda: self._log.info(message, **data))

    def warning(self, message: str, **data: Any) -> None:
        anyio.from_thread.run_sync(lambda: self._log.warning(message, **data))

    def error(self, message: str, **data: Any) -> None:
        anyio.from_thread.run_sync(lambda: self._log.error(message, **data))


@dataclass
class BlockRegistry:
    """Registered blocks by type name; refuses a duplicate name loudly."""

    _blocks: dict[str, Block] = field(default_factory=dict)

    def add(self, *blocks: Block) -> None:
        for b in blocks:
            if b.type in self._blocks:
                raise DuplicateBlockError(f"block type {b.type!r} is already registered")
            self._blocks[b.type] = b

    def register(
        self,
        type_name: str,
        params: type[BaseModel],
        *,
        raw_params: Iterable[str] = (),
        ports: tuple[str, ...] | None = None,
        default_timeout_s: float = DEFAULT_TIMEOUT_S,
        blocking: bool = False,
    ) -> Callable[[Callable[..., Any]], Block]:
        """Decorator: declare a block and register it here in one step."""

        def decorate(fn: Callable[..., Any]) -> Block:
            b = block(
                type_name,
                params,
                raw_params=raw_params,
                ports=ports,
                default_timeout_s=default_timeout_s,
                blocking=blocking,
            )(fn)
            self.add(b)
            return b

        return decorate

    def get(self, type_name: str) -> Block | None:
        return self._blocks.get(type_name)

    def __contains__(self, type_name: object) -> bool:
        return type_name in self._blocks

    def __iter__(self) -> Iterator[Block]:
        return iter(sorted(self._blocks.values(), key=lambda b: b.type))

    def __len__(self) -> int:
        return len(self._blocks)
