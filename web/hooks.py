"""Webhooks: POST /hooks/{slug} starts a run with the JSON body as its trigger payload.

A workflow with a webhook_secret only accepts calls signed with it: the header
`X-Weft-Signature: sha256=<hex HMAC-SHA256 of the raw body>` (checked by the runner).
"""

from __future__ import annotations

from typing import Any

from quart import Blueprint, Response, request
from quart_schema import document_querystring, document_request, document_response

from runner.facade import SIGNATURE_HEADER
from web.context import weft
from web.schemas import ErrorResponse, HookBody, RunOut
from web.triggers import TriggerQuery, trigger

blueprint = Blueprint("hooks", __name__)


def trigger_payload(body: Any) -> Any:
    """The body is the payload; the form {"payload": X} is unwrapped; empty is {}."""
    if body is None:
        return {}
    if isinstance(body, dict) and set(body) == {"payload"}:
        return body["payload"]
    return body


@blueprint.post("/hooks/<string:slug>")
@document_request(HookBody)
@document_querystring(TriggerQuery)
@document_response(RunOut, 200)
@document_response(RunOut, 202)
@document_response(ErrorResponse, 401)
@document_response(ErrorResponse, 404)
@document_response(ErrorResponse, 429)
async def fire_hook(slug: str) -> Response:
    """Start a run of the workflow with this webhook slug: 202 with the run (200 with the
    finished run under ?wait, or the earlier run for a repeated Idempotency-Key); 429 with
    Retry-After over the workflow's rate_limit (every signed call counts, a repeated key
    too)."""
    raw = await request.get_data(as_text=False)
    body = raw if isinstance(raw, bytes) else raw.encode()
    signature = request.headers.get(SIGNATURE_HEADER)

    async def payload() -> Any:
        return trigger_payload(await request.get_json())

    return await trigger(
        lambda key: weft().fire_hook(
            slug, body=body, signature=signature, payload=payload, idempotency_key=key
        )
    )
