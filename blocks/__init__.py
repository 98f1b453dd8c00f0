"""weft blocks: the block contract, the registry and the standard blocks."""

from blocks.context import ArtifactStore, NodeLogger, RunContext, StoredArtifact
from blocks.registry import Block, BlockFn, BlockRegistry, DuplicateBlockError, block
from blocks.standard import standard_registry

__all__ = [
    "ArtifactStore",
    "Block",
    "BlockFn",
    "BlockRegistry",
    "DuplicateBlockError",
    "NodeLogger",
    "RunContext",
    "StoredArtifact",
    "block",
    "standard_registry",
]
