"""What the two triggers (POST /workflows/{id}/run and POST /hooks/{slug}) share:
the Idempotency-Key header and ?wait=SECONDS."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio
from pydantic import BaseModel, ConfigDict, Field
from quart import Response, request

from runner.facade import Response as WorkflowResponse
from runner.models import Run
from web.bodies import read_query
from web.context import weft
from web.errors import ApiError
from web.views import json_response

IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_IDEMPOTENCY_KEY = 200
MAX_WAIT_S = 300.0


class TriggerQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    wait: float | None = Field(
        default=None,
        ge=0,
        le=MAX_WAIT_S,
        description="Wait up to this many seconds for the run to finish: 200 with the "
        "finished run and its outputs, or 202 when the wait runs out.",
    )


def idempotency_key() -> str | None:
    """The request's Idempotency-Key header, checked."""
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is None:
        return None
    key = key.strip()
    if not key or len(key) > MAX_IDEMPOTENCY_KEY:
        raise ApiError(
            400,
            "bad_idempotency_key",
            f"{IDEMPOTENCY_HEADER} must be 1 to {MAX_IDEMPOTENCY_KEY} characters",
        )
    return key


async def trigger(start: Callable[[str | None], Awaitable[tuple[Run, bool]]]) -> Response:
    """Start (or find, by idempotency key) a run; wait for it when asked.

    202 for a new run still going; 200 for a finished run or a repeated idempotency key.
    """
    query = read_query(TriggerQuery)
    key = idempotency_key()
    run, created = await start(key)
    headers = {"Location": f"/runs/{run.id}"}
    if key is not None:
        headers["Idempotent-Replayed"] = "false" if created else "true"
    if query.wait and not run.status.finished:
        with anyio.move_on_after(query.wait):
            answer = await weft().wait_answer(run, unfinished=created)
            if isinstance(answer, WorkflowResponse):
                return respond_with(answer, headers)
            run = answer
    status = 200 if run.status.finished or not created else 202
    return json_response(run.to_json(), status, headers)


def respond_with(answer: WorkflowResponse, headers: dict[str, str]) -> Response:
    """The answer a `respond` node set: its status, headers and body (JSON, or text)."""
    if isinstance(answer.body, str):
        response = Response(answer.body, answer.status, content_type="text/plain; charset=utf-8")
    else:
        response = json_response(answer.body, answer.status)
    response.headers.update(headers)
    response.headers.update(answer.headers)  # the workflow's own, content type included
    return response
