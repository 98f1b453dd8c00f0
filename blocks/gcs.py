"""The gcs.write block: writes an artifact through the run's artifact store."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from blocks.context import RunContext
from blocks.registry import block


class GcsWriteParams(BaseModel):
    """Params of `gcs.write`."""

    model_config = ConfigDict(extra="forbid")
    path: str = Field(
        min_length=1, max_length=1024, description="Object path in the bucket, e.g. reports/a.json."
    )
    content: Any = Field(default=None, description="What to write; the node input when omitted.")
    as_json: bool = Field(default=False, description="Write content as JSON even if a string.")
    content_type: str | None = None

    @field_validator("path")
    @classmethod
    def _safe_path(cls, value: str) -> str:
        parts = value.split("/")
        if value.startswith("/") or "\\" in value or any(p in ("", ".", "..") for p in parts):
            raise ValueError(
                "path must be relative and '/'-separated, without empty, '.' or '..' segments"
            )
        return value


@block("gcs.write", GcsWriteParams)
async def gcs_write(input: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
    """Writes content to Google Cloud Storage (or the local artifact folder)."""
    params = ctx.params_as(GcsWriteParams)
    content = params.content if params.content is not None else input["upstream"]
    if isinstance(content, bytes):
        data, content_type = content, "application/octet-stream"
    elif isinstance(content, str) and not params.as_json:
        data, content_type = content.encode(), "text/plain; charset=utf-8"
    else:
        data, content_type = json.dumps(content).encode(), "application/json"
    stored = await ctx.artifacts.put(
        run_id=ctx.run_id,
        node_id=ctx.node_id,
        path=params.path,
        data=data,
        content_type=params.content_type or content_type,
    )
    ctx.log.info(f"wrote {stored.size} bytes to {stored.uri}", uri=stored.uri, size=stored.size)
    return {"gcs_uri": stored.uri, "size": stored.size, "artifact_id": str(stored.id)}
