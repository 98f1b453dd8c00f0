"""Schedules: the record, and the cron arithmetic behind it. Pure: no I/O.

Cron expressions are parsed by cronsim (the parser of healthchecks.io, kept up to date, and
made for exactly this: standard 5-field cron, iterated forwards and backwards in a time zone,
with daylight-saving gaps and repeats handled the way cron does).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from runner.models import Row, iso


class ScheduleError(ValueError):
    """A cron expression or a time zone weft cannot use; `field` names which."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def zone(name: str) -> ZoneInfo:
    """The IANA time zone `name`, else ScheduleError."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError("timezone", f"unknown time zone {name!r} (an IANA name)") from None


def check(cron: str, timezone: str) -> None:
    """Raise ScheduleError unless the cron expression and time zone are usable."""
    tz = zone(timezone)
    if len(cron.split()) != 5:
        raise ScheduleError("cron", f"{cron!r}: a cron expression has 5 fields")
    try:
        CronSim(cron, datetime.now(tz))
    except CronSimError as exc:
        raise ScheduleError("cron", f"{cron!r}: {exc}") from None


def next_fire(cron: str, timezone: str, after: datetime) -> datetime:
    """The first slot strictly after `after`."""
    return next(CronSim(cron, after.astimezone(zone(timezone))))


def latest_slot(cron: str, timezone: str, now: datetime) -> datetime:
    """The last slot at or before `now`: what a due schedule fires for (once, however many
    slots passed while nobody looked)."""
    return next(CronSim(cron, (now + timedelta(seconds=1)).astimezone(zone(timezone)), True))


@dataclass(frozen=True, slots=True)
class Schedule:
    """A workflow started on a cron."""

    id: UUID
    workflow_id: UUID
    cron: str
    timezone: str
    payload: Any
    enabled: bool
    next_fire_at: datetime | None
    last_fired_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: Row) -> Schedule:
        return cls(
            id=row["id"],
            workflow_id=row["workflow_id"],
            cron=row["cron"],
            timezone=row["timezone"],
            payload=row["payload"],
            enabled=row["enabled"],
            next_fire_at=row["next_fire_at"],
            last_fired_at=row["last_fired_at"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "workflow_id": str(self.workflow_id),
            "cron": self.cron,
            "timezone": self.timezone,
            "payload": self.payload,
            "enabled": self.enabled,
            "next_fire_at": iso(self.next_fire_at),
            "last_fired_at": iso(self.last_fired_at),
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }
