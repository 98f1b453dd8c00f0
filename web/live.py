"""Live events: websocket channels and Server-Sent Events over runner's LiveStreams."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from quart import Blueprint, Response, request, websocket
from quart_schema import validate_querystring, validate_response

from runner.errors import NotFoundError, ShuttingDownError
from runner.facade import GoingAwayError, Item
from web.context import weft
from web.schemas import ErrorResponse

blueprint = Blueprint("live", __name__)

# Close codes: 1000 when a run has finished, 1001 when the server shuts down,
# 4404 unknown id, 4400 bad query (4401 is the handshake's 401 without a token).
CLOSE_GOING_AWAY = 1001
CLOSE_NOT_FOUND = 4404
CLOSE_BAD_REQUEST = 4400
SSE_HEARTBEAT_S = 15.0


class LiveQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")
    after: int | None = Field(
        default=None,
        ge=0,
        le=2**31 - 1,
        description="Replay the events after this seq (a reconnect).",
    )


def _after_from_query() -> int | None:
    return LiveQuery.model_validate(dict(websocket.args)).after


async def _send_all(messages: AsyncIterator[Item]) -> bool:
    """Send every message; False when the server is going away (the socket is closed)."""
    try:
        async for message in messages:
            if message is not None:
                await websocket.send(message.text())
    except GoingAwayError:
        await websocket.close(CLOSE_GOING_AWAY, "server shutting down; reconnect with ?after")
        return False
    return True


async def _stream(
    open_messages: Callable[[int | None], AsyncIterator[Item]],
    missing: str,
) -> bool:
    """Accept, read ?after, send every message; True when the stream ended by itself."""
    await websocket.accept()
    try:
        after = _after_from_query()
    except ValidationError:
        await websocket.close(CLOSE_BAD_REQUEST, "after must be a non-negative integer")
        return False
    try:
        return await _send_all(open_messages(after))
    except NotFoundError:
        await websocket.close(CLOSE_NOT_FOUND, missing)
        return False


@blueprint.websocket("/ws/runs/<uuid:run_id>")
async def run_socket(run_id: UUID) -> None:
    """A snapshot of the run, then its live events; closes (1000) once it has finished."""
    facade = weft()
    if await _stream(lambda after: facade.run_messages(run_id, after), f"no run {run_id}"):
        await websocket.close(1000, "run finished")


@blueprint.websocket("/ws/workflows/<uuid:workflow_id>")
async def workflow_socket(workflow_id: UUID) -> None:
    """Every run of the workflow (created, node status changes, finished) and its updates."""
    facade = weft()
    await _stream(
        lambda after: facade.workflow_messages(workflow_id, after), f"no workflow {workflow_id}"
    )


@blueprint.get("/runs/<uuid:run_id>/events")
@validate_querystring(LiveQuery)
@validate_response(ErrorResponse, 404)
async def run_events(run_id: UUID, query_args: LiveQuery) -> Response:
    """The run's live events as Server-Sent Events (text/event-stream): the same messages as
    WS /ws/runs/{id}; reconnects resume from the Last-Event-ID header (or ?after=)."""
    after = query_args.after
    last_event_id = request.headers.get("Last-Event-ID", "")
    if last_event_id.isdigit():
        after = int(last_event_id)
    messages = weft().run_messages(run_id, after, heartbeat_s=SSE_HEARTBEAT_S)
    # The first message is read here so that an unknown run is a 404, not an empty stream.
    try:
        first = await anext(messages, _END)
    except GoingAwayError:
        raise ShuttingDownError() from None

    async def stream() -> AsyncIterator[bytes]:
        message = first
        while message is not _END:
            if message is None:
                yield b": keep-alive\n\n"
            else:
                yield (
                    f"id: {message.seq}\nevent: {message.type}\ndata: {message.text()}\n\n"
                ).encode()
            try:
                message = await anext(messages, _END)
            except GoingAwayError:
                return

    response = Response(
        stream(),
        status=200,
        content_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
    response.timeout = None
    return response


_END: Any = object()
