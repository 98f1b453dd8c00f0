"""The standard block set."""

from __future__ import annotations

from blocks.flow import delay, if_, start
from blocks.gcs import gcs_write
from blocks.http import http_request
from blocks.llm import llm_simple
from blocks.registry import BlockRegistry
from blocks.respond import respond
from blocks.subworkflow import workflow_run
from blocks.transform import transform

STANDARD_BLOCKS = (
    start, http_request, gcs_write, llm_simple, transform, if_, delay, workflow_run, respond
)  # fmt: skip


def standard_registry() -> BlockRegistry:
    """A fresh registry holding the standard blocks."""
    registry = BlockRegistry()
    registry.add(*STANDARD_BLOCKS)
    return registry
