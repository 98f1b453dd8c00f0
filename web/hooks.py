"""Webhooks: POST /hooks/{slug} starts a run with the JSON body as its trigger payload.

A workflow with a webhook_secret only accepts calls signed with it: the header
`X-Weft-Signature: sha256=<hex HMAC-SHA256 of the raw body>`.
"""

from __future__ import annotations

import hashlib
import hmac
from functools import partial
from typing import Any
from uuid import UUID

from quart import Blueprint, Response, request
from quart_schema import document_querystring, document_request, document_response

from runner.errors import HookChangedError
from runner.models import Hook, Run
from web.app import system
from web.errors import ApiError
from web.schemas import ErrorResponse, RunOut
from web.triggers import TriggerQuery, trigger

blueprint = Blueprint("hooks", __name__)

SIGNATURE_HEADER = "X-Weft-Signature"


def trigger_payload(body: Any) -> Any:
    """The body is the payload; the form {"payload": X} is unwrapped; empty is {}."""
    if body is None:
        return {}
    if isinstance(body, dict) and set(body) == {"payload"}:
        return body["payload"]
    return body


def signature_of(secret: str, body: bytes) -> str:
    """The X-Weft-Signature value for a body signed with a secret."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signed_with(secret: str, body: bytes) -> bool:
    """Whether the request's X-Weft-Signature is the body's signature with `secret`."""
    given = request.headers.get(SIGNATURE_HEADER)
    if not given:
        raise ApiError(
            401, "signature_required", f"this webhook requires a {SIGNATURE_HEADER} header"
        )
    return hmac.compare_digest(given.strip().encode(), signature_of(secret, body).encode())


async def verified_hook(slug: str, body: bytes, *, fresh: bool = False) -> Hook:
    """The webhook, its signature checked (against a fresh copy when the remembered
    secret does not match: it may have been changed by another process)."""
    runtime = system().runtime
    hook = await runtime.find_hook(slug, fresh=fresh)
    if hook.secret and not fresh and not signed_with(hook.secret, body):
        hook = await runtime.find_hook(slug, fresh=True)
    if hook.secret and not signed_with(hook.secret, body):
        raise ApiError(
            401,
            "bad_signature",
            f"{SIGNATURE_HEADER} does not match: sign the raw body with HMAC-SHA256 "
            "and send sha256=<hex>",
        )
    return hook


@blueprint.post("/hooks/<string:slug>")
@document_request(dict[str, Any])
@document_querystring(TriggerQuery)
@document_response(RunOut, 200)
@document_response(RunOut, 202)
@document_response(ErrorResponse, 401)
@document_response(ErrorResponse, 404)
async def fire_hook(slug: str) -> Response:
    """Start a run of the workflow with this webhook slug: 202 with the run (200 with the
    finished run under ?wait, or the earlier run for a repeated Idempotency-Key)."""
    raw = await request.get_data(as_text=False)
    body = raw if isinstance(raw, bytes) else raw.encode()
    hook = await verified_hook(slug, body)
    payload = trigger_payload(await request.get_json())

    async def start(workflow_id: UUID, check: Hook | None, key: str | None) -> tuple[Run, bool]:
        return await system().runtime.start_run(
            workflow_id, trigger_type="webhook", payload=payload, idempotency_key=key, hook=check
        )

    try:
        # The insert re-checks the remembered hook: no run starts on a stale copy.
        return await trigger(partial(start, hook.workflow_id, hook))
    except HookChangedError:
        # Changed or gone since remembered, or a repeated idempotency key: look again.
        hook = await verified_hook(slug, body, fresh=True)
        return await trigger(partial(start, hook.workflow_id, None))
