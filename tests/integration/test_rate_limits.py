"""Rate limits on a workflow's triggers (webhook, run, batch), over real servers on loopback:
429 with Retry-After over the limit, nothing started, the limit held across two processes on
one database, and the limit shown, set, cleared and copied like the workflow's other fields."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from uuid import UUID

import anyio
import httpx
import pytest

from tests.support import WeftServer, run_weft_server

pytestmark = pytest.mark.anyio

ONE = {"nodes": [{"id": "start", "type": "start"}], "edges": []}


@asynccontextmanager
async def two(database_url: str, tmp_path: Path) -> AsyncIterator[tuple[WeftServer, WeftServer]]:
    """Two weft processes (each its own runtime and caches) on one database."""
    async with (
        run_weft_server(database_url, tmp_path / "a") as a,
        run_weft_server(database_url, tmp_path / "b") as b,
    ):
        yield a, b


async def runs_of(weft: WeftServer, workflow_id: str) -> int:
    response = await weft.client.get(f"/workflows/{workflow_id}/runs", params={"limit": 200})
    assert response.status_code == 200, response.text
    return len(response.json()["items"])


def assert_rate_limited(response: httpx.Response) -> int:
    """The 429's shape; its Retry-After in seconds."""
    assert response.status_code == 429, response.text
    retry_after = int(response.headers["Retry-After"])
    assert retry_after >= 1
    error = response.json()["error"]
    assert error["code"] == "rate_limited"
    assert error["message"]
    assert error["details"] == [
        {"retry_after_s": retry_after, "rate_limit": error["details"][0]["rate_limit"]}
    ]
    return retry_after


async def test_the_call_over_the_limit_is_429_until_its_retry_after(weft: WeftServer) -> None:
    # Given a workflow that takes 3 calls per 2 s
    workflow = await weft.create_workflow(ONE, rate_limit={"requests": 3, "per_s": 2})
    hook = f"/hooks/{workflow['webhook_slug']}"

    # When it is called 4 times in a row
    answers = [(await weft.client.post(hook, json={"n": i})) for i in range(4)]

    # Then 3 runs start, and the 4th is refused with when to call again, starting nothing
    assert [a.status_code for a in answers[:3]] == [202, 202, 202]
    retry_after = assert_rate_limited(answers[3])
    assert retry_after <= 2
    assert answers[3].json()["error"]["details"][0]["rate_limit"] == {"requests": 3, "per_s": 2}
    assert await runs_of(weft, workflow["id"]) == 3

    # And once Retry-After has passed, a call is taken again
    await anyio.sleep(retry_after)
    again = await weft.client.post(hook, json={"n": 4})
    assert again.status_code == 202, again.text
    assert await runs_of(weft, workflow["id"]) == 4


async def test_two_processes_share_one_limit(database_url: str, tmp_path: Path) -> None:
    async with two(database_url, tmp_path) as (a, b):
        # Given a workflow that takes 5 calls a minute, known to both processes
        workflow = await a.create_workflow(ONE, rate_limit={"requests": 5, "per_s": 60})
        hook = f"/hooks/{workflow['webhook_slug']}"
        run = f"/workflows/{workflow['id']}/run"

        # When 20 callers call at once, half of them on each process, by webhook and by run
        answers: list[httpx.Response] = []

        async def call(i: int) -> None:
            weft = (a, b)[i % 2]
            path = hook if i % 4 < 2 else run
            answers.append(await weft.client.post(path, json={}))

        async with anyio.create_task_group() as tg:
            for i in range(20):
                tg.start_soon(call, i)

        # Then exactly 5 are taken and 15 refused, and 5 runs exist
        statuses = sorted(r.status_code for r in answers)
        assert statuses == [202] * 5 + [429] * 15, statuses
        for refused in (r for r in answers if r.status_code == 429):
            assert 1 <= assert_rate_limited(refused) <= 60
        assert await runs_of(a, workflow["id"]) == 5


async def test_a_limit_set_on_one_process_holds_on_the_other_at_once(
    database_url: str, tmp_path: Path
) -> None:
    async with two(database_url, tmp_path) as (a, b):
        # Given a workflow without a limit that B has served (and remembers as unlimited)
        workflow = await a.create_workflow(ONE)
        hook = f"/hooks/{workflow['webhook_slug']}"
        assert (await b.client.post(hook, json={})).status_code == 202
        updates = b.system.weft.workflow_messages(UUID(workflow["id"]))
        try:
            with anyio.fail_after(10):
                assert await anext(updates) is not None  # the snapshot
                # When A sets a limit of 1 a minute
                body = {"name": "limited", "graph": ONE, "rate_limit": {"requests": 1, "per_s": 60}}
                put = await a.client.put(f"/workflows/{workflow['id']}", json=body)
                assert put.status_code == 200, put.text
                # (B hears of it)
                event = await anext(updates)
                assert event is not None
                assert event.to_json()["workflow"]["rate_limit"] == body["rate_limit"]
        finally:
            await updates.aclose()  # type: ignore[attr-defined]

        # Then B takes one call and refuses the next
        assert (await b.client.post(hook, json={})).status_code == 202
        assert_rate_limited(await b.client.post(hook, json={}))
        assert_rate_limited(await a.client.post(hook, json={}))
        assert await runs_of(a, workflow["id"]) == 2


async def test_a_batch_is_taken_or_refused_whole(weft: WeftServer) -> None:
    workflow = await weft.create_workflow(ONE, rate_limit={"requests": 5, "per_s": 60})
    batch = f"/workflows/{workflow['id']}/runs/batch"

    def runs(k: int) -> dict[str, Any]:
        return {"runs": [{"start_input": {"i": i}} for i in range(k)]}

    # A batch of 3 of 5 fits; then 3 more do not (2 are left): none of them starts
    assert (await weft.client.post(batch, json=runs(3))).status_code == 202
    assert_rate_limited(await weft.client.post(batch, json=runs(3)))
    assert await runs_of(weft, workflow["id"]) == 3
    # The 2 left fit
    taken = await weft.client.post(batch, json=runs(2))
    assert taken.status_code == 202, taken.text
    assert len(taken.json()["items"]) == 2
    # More runs at once than the limit ever allows is a 422, not a wait that never ends
    never = await weft.client.post(batch, json=runs(6))
    assert never.status_code == 422, never.text
    assert never.json()["error"]["details"][0]["field"] == "runs"
    assert await runs_of(weft, workflow["id"]) == 5


async def test_the_limit_is_shown_set_cleared_and_copied(weft: WeftServer) -> None:
    limit = {"requests": 100, "per_s": 0.5}
    created = await weft.create_workflow(ONE, name="limited", rate_limit=limit)
    path = f"/workflows/{created['id']}"
    assert created["rate_limit"] == limit
    assert (await weft.client.get(path)).json()["rate_limit"] == limit
    listed = (await weft.client.get("/workflows")).json()["items"]
    assert [w["rate_limit"] for w in listed] == [limit]

    # A duplicate copies it
    copy = await weft.client.post(f"{path}/duplicate", json={})
    assert copy.status_code == 201, copy.text
    assert copy.json()["rate_limit"] == limit

    # A PUT sets another; one without it clears it (as max_concurrency)
    other = {"requests": 7, "per_s": 86400}
    put = await weft.client.put(path, json={"name": "limited", "graph": ONE, "rate_limit": other})
    assert put.json()["rate_limit"] == other
    cleared = await weft.client.put(path, json={"name": "limited", "graph": ONE})
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["rate_limit"] is None
    assert (await weft.client.get(path)).json()["rate_limit"] is None
    explicit = {"name": "limited", "graph": ONE, "rate_limit": None}
    assert (await weft.client.put(path, json=explicit)).json()["rate_limit"] is None
    # The copy kept its own
    assert (await weft.client.get(f"/workflows/{copy.json()['id']}")).json()["rate_limit"] == limit


@pytest.mark.parametrize(
    ("rate_limit", "field"),
    [
        ({"requests": 0, "per_s": 1}, "rate_limit.requests"),
        ({"requests": 1_000_001, "per_s": 1}, "rate_limit.requests"),
        ({"requests": 2.5, "per_s": 1}, "rate_limit.requests"),
        ({"requests": "many", "per_s": 1}, "rate_limit.requests"),
        ({"per_s": 1}, "rate_limit.requests"),
        ({"requests": 1, "per_s": 0}, "rate_limit.per_s"),
        ({"requests": 1, "per_s": -1}, "rate_limit.per_s"),
        ({"requests": 1, "per_s": 86_400.5}, "rate_limit.per_s"),
        ({"requests": 1}, "rate_limit.per_s"),
        ({"requests": 1, "per_s": 1, "burst": 2}, "rate_limit.burst"),
        ([5, 60], "rate_limit"),
        (5, "rate_limit"),
    ],
)
async def test_a_bad_limit_is_a_422_naming_its_field(
    weft: WeftServer, rate_limit: Any, field: str
) -> None:
    body = {"name": "bad", "graph": ONE, "rate_limit": rate_limit}
    created = await weft.client.post("/workflows", json=body)
    assert created.status_code == 422, created.text
    assert field in {d["field"] for d in created.json()["error"]["details"]}, created.text
    workflow = await weft.create_workflow(ONE)
    put = await weft.client.put(f"/workflows/{workflow['id']}", json=body)
    assert put.status_code == 422, put.text
    assert field in {d["field"] for d in put.json()["error"]["details"]}, put.text
    assert (await weft.client.get("/workflows")).json()["total"] == 1


async def test_a_workflow_without_a_limit_is_unaffected(weft: WeftServer) -> None:
    # Given a limited workflow beside one without a limit
    free = await weft.create_workflow(ONE, name="free")
    limited = await weft.create_workflow(ONE, name="tight", rate_limit={"requests": 1, "per_s": 60})
    assert free["rate_limit"] is None
    assert (await weft.client.post(f"/hooks/{limited['webhook_slug']}", json={})).is_success

    # When the free one is called many times, in a batch of the most runs at once too
    hook = f"/hooks/{free['webhook_slug']}"
    answers = [await weft.client.post(hook, json={}) for _ in range(30)]
    batch: dict[str, Any] = {"runs": [{} for _ in range(1000)]}
    many = await weft.client.post(f"/workflows/{free['id']}/runs/batch", json=batch)

    # Then every call is taken
    assert {a.status_code for a in answers} == {202}
    assert many.status_code == 202, many.text
    assert len(many.json()["items"]) == 1000


async def test_the_description_documents_the_limit_and_its_429(weft: WeftServer) -> None:
    spec = (await weft.client.get("/openapi.json")).json()
    schemas = spec["components"]["schemas"]
    assert "rate_limit" in schemas["WorkflowIn"]["properties"]
    assert "rate_limit" in schemas["WorkflowOut"]["properties"]
    limit = schemas["WorkflowRateLimit"]["properties"]
    assert (limit["requests"]["minimum"], limit["requests"]["maximum"]) == (1, 1_000_000)
    assert (limit["per_s"]["exclusiveMinimum"], limit["per_s"]["maximum"]) == (0, 86_400)
    for path in (
        "/hooks/{slug}",
        "/workflows/{workflow_id}/run",
        "/workflows/{workflow_id}/runs/batch",
    ):
        refused = spec["paths"][path]["post"]["responses"]["429"]
        assert refused["content"]["application/json"]["schema"]["$ref"].endswith("ErrorResponse")
        assert refused["headers"]["Retry-After"]["schema"] == {"type": "integer", "minimum": 1}
    assert "429" not in spec["paths"]["/runs/{run_id}/rerun"]["post"]["responses"]


async def test_a_repeated_idempotency_key_takes_nothing_of_the_limit(weft: WeftServer) -> None:
    workflow = await weft.create_workflow(ONE, rate_limit={"requests": 1, "per_s": 60})
    hook = f"/hooks/{workflow['webhook_slug']}"
    run_path = f"/workflows/{workflow['id']}/run"
    first = await weft.client.post(hook, json={}, headers={"Idempotency-Key": "k1"})
    assert first.status_code == 202
    # A client's retries answer the run it started, though the limit is used up
    for path in (hook, run_path):
        retry = await weft.client.post(path, json={}, headers={"Idempotency-Key": "k1"})
        assert retry.status_code == 200, retry.text
        assert retry.json()["id"] == first.json()["id"]
        assert retry.headers["Idempotent-Replayed"] == "true"
    assert_rate_limited(await weft.client.post(hook, json={}, headers={"Idempotency-Key": "k2"}))
    assert await runs_of(weft, workflow["id"]) == 1
