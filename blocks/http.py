"""The http.request block, through the run's shared httpx client."""

from __future__ import annotations

from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field

from blocks.context import RunContext
from blocks.outbound import OutboundRefusedError
from blocks.registry import block

Method = Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


class HttpRequestParams(BaseModel):
    """Params of `http.request`."""

    model_config = ConfigDict(extra="forbid")
    method: Method = "GET"
    url: str = Field(pattern=r"^https?://", description="An http:// or https:// URL.")
    headers: dict[str, str] = Field(default_factory=dict)
    body: Any = Field(default=None, description="Sent as JSON unless it is a string.")


@block("http.request", HttpRequestParams, default_timeout_s=60.0)
async def http_request(input: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
    """Calls an HTTP endpoint; an error status is returned, a transport error fails the node."""
    params = ctx.params_as(HttpRequestParams)
    # The node's attempt timeout (its timeout_s param) bounds the whole call.
    request_args: dict[str, Any] = {"headers": params.headers, "timeout": ctx.timeout_s}
    if isinstance(params.body, str):
        request_args["content"] = params.body
    elif params.body is not None:
        request_args["json"] = params.body
    try:
        response = await ctx.http.request(params.method, params.url, **request_args)
    except OutboundRefusedError as exc:  # refused by the shared client (blocks/outbound.py)
        raise exc.by("http.request") from None
    ctx.log.info(
        f"{params.method} {params.url} → {response.status_code}",
        status=response.status_code,
        elapsed_ms=round(response.elapsed.total_seconds() * 1000, 1),
    )
    return {
        "status": response.status_code,
        "headers": dict(response.headers),
        "data": _decode(response),
    }


def _decode(response: httpx.Response) -> Any:
    content_type = response.headers.get("content-type", "")
    if "json" in content_type:
        try:
            return response.json()
        except ValueError:
            pass
    return response.text
