"""The respond block: the HTTP answer a waiting webhook or run call gets."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from blocks.context import RunContext
from blocks.registry import block

# Headers that belong to one connection, or that the server sets from the body itself.
HOP_BY_HOP = frozenset(
    {
        "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection",
        "te", "trailer", "trailers", "transfer-encoding", "upgrade", "content-length", "host",
        "date", "server",
    }
)  # fmt: skip
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}$")
MAX_HEADERS = 50


class RespondParams(BaseModel):
    """Params of `respond`."""

    model_config = ConfigDict(extra="forbid")
    status: int = Field(default=200, ge=200, le=599, description="The HTTP status, 200 to 599.")
    body: Any = Field(
        default=None, description="JSON, or a string (sent as text/plain unless a header says)."
    )
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="Response headers; hop-by-hop ones (Connection, Transfer-Encoding, …), "
        "Content-Length, Host, Date and Server are refused.",
    )

    @field_validator("headers", mode="before")
    @classmethod
    def _scalars_as_text(cls, headers: Any) -> Any:
        # `{{ trigger.order }}` renders to a number: a header carries it as text.
        if isinstance(headers, dict):
            return {
                k: str(v) if isinstance(v, int | float) and not isinstance(v, bool) else v
                for k, v in headers.items()
            }
        return headers

    @field_validator("headers")
    @classmethod
    def _safe(cls, headers: dict[str, str]) -> dict[str, str]:
        if len(headers) > MAX_HEADERS:
            raise ValueError(f"at most {MAX_HEADERS} headers")
        for name, value in headers.items():
            if not _TOKEN.match(name):
                raise ValueError(f"{name!r} is not a header name")
            if name.lower() in HOP_BY_HOP:
                raise ValueError(f"{name!r} cannot be set by a workflow")
            if any(c in value for c in "\r\n\0") or len(value) > 4096:
                raise ValueError(f"the value of {name!r} must be one line of at most 4096 chars")
        return headers


@block("respond", RespondParams)
async def respond(input: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
    """Sets the HTTP answer of a waiting webhook or run call (?wait); the run goes on."""
    params = ctx.params_as(RespondParams)
    return {"status": params.status, "headers": params.headers, "body": params.body}
