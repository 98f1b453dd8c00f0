"""Query strings that page and filter lists: workflows by name and tag, runs by status,
trigger, creation time and parent run."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field

from runner.models import MAX_NAME_LENGTH, RunFilter, RunStatus, TriggerType, WorkflowFilter
from web.schemas import MAX_TAG_LENGTH, TAG_PATTERN, OffsetPage

NO_NUL = "^[^\\u0000]*$"


class WorkflowsPage(OffsetPage):
    q: str | None = Field(
        default=None,
        max_length=MAX_NAME_LENGTH,
        pattern=NO_NUL,
        description="Only workflows whose name contains this text, in any case (every "
        "character literal: % and _ are no wildcards).",
    )
    tag: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_TAG_LENGTH,
        pattern=TAG_PATTERN,
        description="Only workflows having this tag.",
    )

    def filters(self) -> WorkflowFilter:
        return WorkflowFilter(q=self.q, tag=self.tag)


def _one_or_more(value: Any) -> Any:
    """A query parameter given once, repeated (?x=a&x=b) or comma-separated (?x=a,b), as
    one list."""
    if isinstance(value, str):
        value = [value]
    if isinstance(value, list):
        return [
            part.strip()
            for item in value
            for part in (item.split(",") if isinstance(item, str) else [item])
        ]
    return value


_ISO_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def _iso_date_time(value: Any) -> Any:
    if isinstance(value, str) and not _ISO_DATE_TIME.match(value):
        raise ValueError("expected an ISO 8601 date and time with a time zone")
    return value


def _in_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:  # e.g. 9999-12-31T23:00:00-02:00
        raise ValueError("the time is out of range") from None


# An ISO 8601 date and time with its time zone (Z or an offset, + sent as %2B); a time
# without a zone would mean a different moment on each server, so it is refused.
Instant = Annotated[AwareDatetime, BeforeValidator(_iso_date_time), AfterValidator(_in_utc)]
_TIME_NOTE = "An ISO 8601 date and time with a time zone, e.g. 2024-05-01T12:00:00Z."


class RunsPage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    limit: int = Field(default=50, ge=1, le=200)
    before: UUID | None = Field(default=None, description="Cursor: the last run id of a page.")
    status: Annotated[list[RunStatus] | None, BeforeValidator(_one_or_more)] = Field(
        default=None,
        description="Only runs in one of these statuses: repeat the parameter "
        "(?status=failed&status=cancelled) or separate them with commas.",
    )
    trigger_type: Annotated[list[TriggerType] | None, BeforeValidator(_one_or_more)] = Field(
        default=None,
        description="Only runs started so (manual, webhook, workflow, rerun); one or "
        "several, as for status.",
    )
    since: Instant | None = Field(
        default=None, description=f"Only runs created at or after this time. {_TIME_NOTE}"
    )
    until: Instant | None = Field(
        default=None, description=f"Only runs created before this time. {_TIME_NOTE}"
    )
    parent_run_id: UUID | None = Field(
        default=None, description="Only the runs this run's workflow.run nodes started."
    )

    def filters(self) -> RunFilter:
        return RunFilter(
            statuses=None if self.status is None else tuple(self.status),
            trigger_types=None if self.trigger_type is None else tuple(self.trigger_type),
            since=self.since,
            until=self.until,
            parent_run_id=self.parent_run_id,
        )
