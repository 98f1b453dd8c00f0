"""Blocks from outside weft: the modules named in WEFT_BLOCKS, and installed packages that
declare an entry point in the `weft.blocks` group.

A plugin declares its blocks with the public decorator (`from blocks import block`); weft
imports it at start and registers every Block it finds at the module's top level (an entry
point may also name one Block, or a list of them). A plugin that cannot be imported, declares
no block or reuses a type stops the start with one line naming it.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import sys
from collections.abc import Iterable
from types import ModuleType

from blocks.registry import Block, BlockRegistry, DuplicateBlockError

ENTRY_POINT_GROUP = "weft.blocks"


class PluginError(Exception):
    """A plugin could not be loaded; the message names it and says why, in one line."""


def blocks_in(found: object) -> list[Block]:
    """The blocks a plugin offers: a module's top-level Blocks, a Block, or a list of them."""
    if isinstance(found, Block):
        return [found]
    if isinstance(found, ModuleType):
        values: Iterable[object] = vars(found).values()
    elif isinstance(found, list | tuple):
        values = found
    else:
        return []
    unique: dict[int, Block] = {id(v): v for v in values if isinstance(v, Block)}
    return list(unique.values())


def load_plugins(
    registry: BlockRegistry, modules: Iterable[str], *, entry_points: bool = True
) -> list[str]:
    """Register the blocks of each module in `modules`, then of each `weft.blocks` entry
    point; returns the types added. Raises PluginError for the first plugin that fails."""
    added: list[str] = []
    names = [m.strip() for m in modules if m.strip()]
    if names and os.getcwd() not in sys.path:
        # As `python -m` does: a plugin file beside where weft is started is found.
        sys.path.append(os.getcwd())
    for name in names:
        where = f"WEFT_BLOCKS module {name!r}"
        try:
            module = importlib.import_module(name)
        except Exception as exc:
            raise PluginError(f"{where} cannot be imported: {_why(exc)}") from exc
        added += _register(registry, blocks_in(module), where)
    if entry_points:
        for point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            where = f"{ENTRY_POINT_GROUP} entry point {point.name!r} ({point.value})"
            try:
                found = point.load()
            except Exception as exc:
                raise PluginError(f"{where} cannot be loaded: {_why(exc)}") from exc
            added += _register(registry, blocks_in(found), where)
    return added


def _register(registry: BlockRegistry, blocks: list[Block], where: str) -> list[str]:
    if not blocks:
        raise PluginError(f"{where} declares no block (decorate its functions with @block)")
    try:
        registry.add(*blocks)
    except DuplicateBlockError as exc:
        raise PluginError(f"{where}: {exc}") from exc
    return [b.type for b in blocks]


def _why(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0]
