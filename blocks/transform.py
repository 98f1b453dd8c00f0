"""The transform block: a sandboxed template rendered over the node input."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from blocks.context import RunContext
from blocks.registry import block
from blocks.templating import parse_json_or_text, render_string, syntax_error


class TransformParams(BaseModel):
    """Params of `transform`."""

    model_config = ConfigDict(extra="forbid")
    template: str = Field(
        description=(
            "Jinja2 template over {params, upstream, trigger}; "
            'e.g. `{"title": {{ upstream.fetch.data.title | tojson }}}`.'
        )
    )

    @field_validator("template")
    @classmethod
    def _compiles(cls, value: str) -> str:
        error = syntax_error(value)
        if error is not None:
            raise ValueError(f"template {error}")
        return value


@block("transform", TransformParams, raw_params={"template"})
async def transform(input: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
    """Renders a template; the result is parsed JSON when the rendering is JSON."""
    rendered = render_string(input["params"]["template"], input)
    result = parse_json_or_text(rendered) if isinstance(rendered, str) else rendered
    return {"result": result}
