"""Schedules end to end: the API, and a due slot firing exactly once with two processes on one
database (time driven through the schedulers' injectable clocks)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.integration.test_bad_input import error_of
from tests.support import WeftServer, run_weft_server

pytestmark = pytest.mark.anyio

GRAPH = {"nodes": [{"id": "start", "type": "start"}], "edges": []}


async def test_schedules_are_created_listed_changed_and_deleted(weft: WeftServer) -> None:
    workflow = await weft.create_workflow(GRAPH)
    base = f"/workflows/{workflow['id']}/schedules"
    body = {"cron": "0 7 * * 1-5", "timezone": "Europe/Paris", "payload": {"report": "daily"}}
    created = await weft.client.post(base, json=body)
    assert created.status_code == 201, created.text
    schedule = created.json()
    assert schedule["enabled"] is True
    first = datetime.fromisoformat(schedule["next_fire_at"])
    assert first > datetime.now(UTC)
    assert first.astimezone(__import__("zoneinfo").ZoneInfo("Europe/Paris")).hour == 7
    assert first.weekday() < 5
    listed = (await weft.client.get(base)).json()["items"]
    assert [s["id"] for s in listed] == [schedule["id"]]
    # Disabled: no next fire time
    off = await weft.client.put(f"/schedules/{schedule['id']}", json={**body, "enabled": False})
    assert off.json()["next_fire_at"] is None
    assert (await weft.client.get(f"/schedules/{schedule['id']}")).json()["enabled"] is False
    assert (await weft.client.delete(f"/schedules/{schedule['id']}")).status_code == 204
    error_of(await weft.client.get(f"/schedules/{schedule['id']}"), 404, "schedule_not_found")
    # A workflow's deletion takes its schedules along
    again = (await weft.client.post(base, json=body)).json()
    assert (await weft.client.delete(f"/workflows/{workflow['id']}")).status_code == 204
    error_of(await weft.client.get(f"/schedules/{again['id']}"), 404, "schedule_not_found")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"cron": "61 * * * *"}, "cron"),
        ({"cron": "* * * *"}, "cron"),
        ({"cron": "0 7 * * 1-5", "timezone": "Mars/Olympus"}, "timezone"),
        ({"cron": "0 7 * * *", "payload": [1]}, "payload"),
        ({"cron": "0 7 * * *", "every": 5}, "every"),
    ],
)
async def test_bad_schedules_are_422_naming_the_field(
    weft: WeftServer, body: dict[str, Any], field: str
) -> None:
    workflow = await weft.create_workflow(GRAPH)
    response = await weft.client.post(f"/workflows/{workflow['id']}/schedules", json=body)
    details = error_of(response, 422)["details"]
    assert field in {d.get("field") for d in details}, details
    assert (await weft.client.get(f"/workflows/{workflow['id']}/schedules")).json()["items"] == []


async def test_unknown_workflow_or_schedule_is_404(weft: WeftServer) -> None:
    ghost = "00000000-0000-4000-8000-000000000000"
    body = {"cron": "0 7 * * *"}
    error_of(await weft.client.post(f"/workflows/{ghost}/schedules", json=body), 404)
    error_of(await weft.client.get(f"/workflows/{ghost}/schedules"), 404)
    error_of(await weft.client.put(f"/schedules/{ghost}", json=body), 404)
    error_of(await weft.client.delete(f"/schedules/{ghost}"), 404)


class Clock:
    """A clock both processes' schedulers read; the test moves it."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


async def test_a_due_slot_fires_exactly_once_with_two_processes(
    database_url: str, tmp_path: Path
) -> None:
    clock = Clock(datetime(2030, 1, 1, 0, 3, tzinfo=UTC))
    async with (
        run_weft_server(database_url, tmp_path / "a") as a,
        run_weft_server(database_url, tmp_path / "b") as b,
    ):
        schedulers = [s.system.runtime.scheduler for s in (a, b)]
        for scheduler in schedulers:
            assert scheduler is not None
            scheduler.clock = clock
        workflow = await a.create_workflow(GRAPH)
        body = {"cron": "*/5 * * * *", "payload": {"job": "sweep"}}
        schedule = (await a.client.post(f"/workflows/{workflow['id']}/schedules", json=body)).json()
        assert schedule["next_fire_at"] == "2030-01-01T00:05:00+00:00"

        async def everyone_looks() -> None:
            async with anyio.create_task_group() as tg:
                for scheduler in schedulers:
                    for _ in range(3):  # and again: the looks race each other
                        tg.start_soon(scheduler.fire_due)  # type: ignore[union-attr]

        async def scheduled_runs() -> list[dict[str, Any]]:
            page = await b.client.get(f"/workflows/{workflow['id']}/runs?trigger_type=schedule")
            return list(page.json()["items"])

        await everyone_looks()
        assert await scheduled_runs() == []  # not due yet
        clock.now = datetime(2030, 1, 1, 0, 5, 30, tzinfo=UTC)
        await everyone_looks()
        (first,) = await scheduled_runs()
        run = await a.wait(first["id"])
        assert run["status"] == "succeeded"
        assert run["trigger_payload"] == {"job": "sweep", "fired_at": "2030-01-01T00:05:00+00:00"}
        # Down from 00:06 to 00:31: the five slots missed fire once, as the latest
        clock.now = datetime(2030, 1, 1, 0, 31, tzinfo=UTC)
        await everyone_looks()
        runs = await scheduled_runs()
        assert len(runs) == 2
        latest = await a.wait(runs[0]["id"])
        assert latest["trigger_payload"]["fired_at"] == "2030-01-01T00:30:00+00:00"
        state = (await a.client.get(f"/schedules/{schedule['id']}")).json()
        assert state["last_fired_at"] == "2030-01-01T00:30:00+00:00"
        assert state["next_fire_at"] == "2030-01-01T00:35:00+00:00"
