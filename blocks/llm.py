"""The llm.simple block: an OpenAI-compatible chat completion, or a deterministic fallback."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from blocks.context import RunContext
from blocks.outbound import OutboundRefusedError
from blocks.registry import block

FALLBACK_MODEL = "fallback-upper"


class LlmSimpleParams(BaseModel):
    """Params of `llm.simple`."""

    model_config = ConfigDict(extra="forbid")
    prompt: str = Field(min_length=1, description="The user message.")
    model: str | None = Field(default=None, description="Defaults to OPENAI_MODEL.")
    system: str | None = Field(default=None, description="An optional system message.")
    temperature: float | None = Field(default=None, ge=0, le=2)


class LlmResponseError(RuntimeError):
    """The LLM endpoint answered with an error status or an unexpected body."""


@block("llm.simple", LlmSimpleParams, default_timeout_s=120.0)
async def llm_simple(input: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
    """Asks an LLM; without OPENAI_API_KEY it answers the prompt upper-cased."""
    params = ctx.params_as(LlmSimpleParams)
    settings = ctx.settings
    if not settings.openai_api_key:
        return {"text": params.prompt.upper(), "model": FALLBACK_MODEL}

    model = params.model or settings.openai_model
    messages = [{"role": "user", "content": params.prompt}]
    if params.system:
        messages.insert(0, {"role": "system", "content": params.system})
    body: dict[str, Any] = {"model": model, "messages": messages}
    if params.temperature is not None:
        body["temperature"] = params.temperature

    try:
        response = await ctx.http.post(
            f"{settings.openai_base_url.rstrip('/')}/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {settings.openai_api_key}"},
            timeout=ctx.timeout_s,
        )
    except OutboundRefusedError as exc:  # OPENAI_BASE_URL obeys the outbound policy too
        raise exc.by("llm.simple") from None
    if response.status_code >= 400:
        raise LlmResponseError(
            f"LLM endpoint answered {response.status_code}: {response.text[:500]}"
        )
    try:
        reply = response.json()
        text = reply["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise LlmResponseError(f"unexpected LLM response: {response.text[:500]}") from exc
    usage = reply.get("usage") or {}
    ctx.log.info("llm completion", model=reply.get("model", model), usage=usage)
    return {"text": text, "model": reply.get("model", model)}
