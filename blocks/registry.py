"""The block registry: type name → block function, params model and branching ports."""

from __future__ import annotations

import builtins
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from blocks.context import RunContext

BlockFn = Callable[[dict[str, Any], RunContext], Awaitable[dict[str, Any]]]

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
) -> Callable[[BlockFn], Block]:
    """Declare a block: turns `async def run(input, ctx) -> dict` into a `Block`.

    The declared block is registered by adding it to a BlockRegistry, so no registry is
    global and tests can build their own.
    """

    def decorate(fn: BlockFn) -> Block:
        return Block(
            type=type_name,
            params_model=params,
            fn=fn,
            description=(fn.__doc__ or "").strip().split("\n")[0],
            raw_params=frozenset(raw_params),
            ports=ports,
            default_timeout_s=default_timeout_s,
        )

    return decorate


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
    ) -> Callable[[BlockFn], Block]:
        """Decorator: declare a block and register it here in one step."""

        def decorate(fn: BlockFn) -> Block:
            b = block(
                type_name,
                params,
                raw_params=raw_params,
                ports=ports,
                default_timeout_s=default_timeout_s,
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
