"""Schedules: a workflow run on a cron, in a time zone (see runner/runtime/scheduler.py)."""

from __future__ import annotations

from uuid import UUID

from quart import Blueprint, Response
from quart_schema import document_response, validate_request

from web.context import weft
from web.schemas import ErrorResponse, ScheduleIn, ScheduleList, ScheduleOut
from web.views import json_response

blueprint = Blueprint("schedules", __name__)


@blueprint.post("/workflows/<uuid:workflow_id>/schedules")
@validate_request(ScheduleIn)
@document_response(ScheduleOut, 201)
@document_response(ErrorResponse, 404)
@document_response(ErrorResponse, 422)
async def create_schedule(workflow_id: UUID, data: ScheduleIn) -> Response:
    """Run the workflow on a cron: 201 with the schedule and its `next_fire_at`."""
    schedule = await weft().create_schedule(
        workflow_id,
        cron=data.cron,
        timezone=data.timezone,
        payload=data.payload,
        enabled=data.enabled,
    )
    return json_response(schedule.to_json(), 201)


@blueprint.get("/workflows/<uuid:workflow_id>/schedules")
@document_response(ScheduleList)
@document_response(ErrorResponse, 404)
async def list_schedules(workflow_id: UUID) -> Response:
    """The workflow's schedules, oldest first, with their next fire times."""
    items = await weft().list_schedules(workflow_id)
    return json_response({"items": [s.to_json() for s in items]})


@blueprint.get("/schedules/<uuid:schedule_id>")
@document_response(ScheduleOut)
@document_response(ErrorResponse, 404)
async def get_schedule(schedule_id: UUID) -> Response:
    """One schedule."""
    return json_response((await weft().get_schedule(schedule_id)).to_json())


@blueprint.put("/schedules/<uuid:schedule_id>")
@validate_request(ScheduleIn)
@document_response(ScheduleOut)
@document_response(ErrorResponse, 404)
@document_response(ErrorResponse, 422)
async def put_schedule(schedule_id: UUID, data: ScheduleIn) -> Response:
    """Overwrite a schedule; its next fire time counts from now."""
    schedule = await weft().update_schedule(
        schedule_id,
        cron=data.cron,
        timezone=data.timezone,
        payload=data.payload,
        enabled=data.enabled,
    )
    return json_response(schedule.to_json())


@blueprint.delete("/schedules/<uuid:schedule_id>")
@document_response(ErrorResponse, 404)
async def delete_schedule(schedule_id: UUID) -> tuple[str, int]:
    """Delete a schedule → 204."""
    await weft().delete_schedule(schedule_id)
    return "", 204
