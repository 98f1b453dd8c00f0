"""Webhooks: POST /hooks/{slug} starts a run with the JSON body as its trigger payload."""

from __future__ import annotations

from typing import Any

from quart import Blueprint, request
from quart_schema import document_request, validate_response

from web.app import system
from web.schemas import ErrorResponse, RunOut
from web.views import run_out

blueprint = Blueprint("hooks", __name__)


def trigger_payload(body: Any) -> Any:
    """The body is the payload; the form {"payload": X} is unwrapped; empty is {}."""
    if body is None:
        return {}
    if isinstance(body, dict) and set(body) == {"payload"}:
        return body["payload"]
    return body


@blueprint.post("/hooks/<string:slug>")
@document_request(dict[str, Any])
@validate_response(RunOut, 202)
@validate_response(ErrorResponse, 404)
async def fire_hook(slug: str) -> tuple[RunOut, int]:
    """Start a run of the workflow with this webhook slug; answers 202 with the run."""
    payload = trigger_payload(await request.get_json())
    run = await system().runtime.start_hook_run(slug, payload)
    return run_out(run), 202
