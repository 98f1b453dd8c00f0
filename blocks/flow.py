"""Flow blocks: start, if, delay."""

from __future__ import annotations

from typing import Any

import anyio
from pydantic import BaseModel, ConfigDict, Field, field_validator

from blocks.context import RunContext
from blocks.registry import block
from blocks.templating import evaluate, syntax_error


class StartParams(BaseModel):
    """Params of `start`."""

    model_config = ConfigDict(extra="forbid")
    payload: Any = Field(
        default=None, description="Data to start with; the trigger payload when omitted."
    )


@block("start", StartParams)
async def start(input: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
    """Entry point: emits the given payload, or the trigger payload."""
    payload = input["params"].get("payload")
    return {"data": payload if payload is not None else input["trigger"]}


class IfParams(BaseModel):
    """Params of `if`."""

    model_config = ConfigDict(extra="forbid")
    condition: str = Field(
        min_length=1,
        description="A Jinja2 expression over the node input, e.g. `upstream.fetch.status == 200`.",
    )

    @field_validator("condition")
    @classmethod
    def _compiles(cls, value: str) -> str:
        error = syntax_error(value, expression=True)
        if error is not None:
            raise ValueError(f"condition {error}")
        return value


@block("if", IfParams, raw_params={"condition"}, ports=("true", "false"))
async def if_(input: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
    """Branch: takes the edges whose port is "true" or "false" by the condition's value."""
    value = evaluate(input["params"]["condition"], input)
    return {"port": "true" if value else "false", "value": value}


class DelayParams(BaseModel):
    """Params of `delay`."""

    model_config = ConfigDict(extra="forbid")
    seconds: float = Field(ge=0, le=3600, description="How long to wait, in seconds.")


# A delay may last an hour; its attempt timeout leaves room for that.
@block("delay", DelayParams, default_timeout_s=3700.0)
async def delay(input: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
    """Waits a while; for demos, tests and load."""
    seconds = ctx.params_as(DelayParams).seconds
    await anyio.sleep(seconds)
    return {"slept": seconds}
