"""Workflows and run history an editor can search: run filters (status, trigger, time,
parent), workflow descriptions and tags, name and tag search, and duplicating a workflow,
through a real server and a real PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any
from uuid import UUID

import anyio
import pytest

from runner.models import MAX_NAME_LENGTH
from tests.integration.test_runs import chain
from tests.support import WeftServer

pytestmark = pytest.mark.anyio

# Succeeds when the trigger payload has `must`, fails at once otherwise.
CHECK = chain(
    {"id": "start", "type": "start"},
    {"id": "check", "type": "transform", "params": {"template": "{{ trigger.must }}"}},
)
ONE = {"nodes": [{"id": "start", "type": "start"}], "edges": []}


async def ids(weft: WeftServer, path: str, **params: Any) -> list[str]:
    """The ids a run history answers, in its order."""
    response = await weft.client.get(path, params=params)
    assert response.status_code == 200, response.text
    return [r["id"] for r in response.json()["items"]]


async def history(weft: WeftServer) -> dict[str, dict[str, Any]]:
    """Seven runs of every status a history filters on, created in this order:
    ok (manual, succeeded), bad (manual, failed), hook (webhook, succeeded), again (rerun of
    bad, failed), parent (manual, succeeded) and its child (workflow, succeeded), slow
    (manual, cancelled)."""
    check = await weft.create_workflow(CHECK, name="check")
    caller = await weft.create_workflow(
        chain(
            {
                "id": "call",
                "type": "workflow.run",
                "params": {"workflow_id": check["id"], "input": {"must": 1}},
            }
        ),
        name="caller",
    )
    slow = await weft.create_workflow(
        chain({"id": "wait", "type": "delay", "params": {"seconds": 30}}), name="slow"
    )
    runs = {"ok": await weft.run(check["id"], {"must": 1}), "bad": await weft.run(check["id"])}
    hooked = await weft.client.post(f"/hooks/{check['webhook_slug']}", json={"must": 1})
    assert hooked.status_code == 202, hooked.text
    runs["hook"] = await weft.wait(hooked.json()["id"])
    again = await weft.client.post(f"/runs/{runs['bad']['id']}/rerun")
    assert again.status_code == 202, again.text
    runs["again"] = await weft.wait(again.json()["id"])
    runs["parent"] = await weft.run(caller["id"])
    runs["child"] = await weft.wait(runs["parent"]["outputs"]["call"]["run_id"])
    started = await weft.client.post(f"/workflows/{slow['id']}/run")
    cancelled = await weft.client.post(f"/runs/{started.json()['id']}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    runs["slow"] = await weft.wait(started.json()["id"])
    expected = {
        "ok": ("succeeded", "manual"),
        "bad": ("failed", "manual"),
        "hook": ("succeeded", "webhook"),
        "again": ("failed", "rerun"),
        "parent": ("succeeded", "manual"),
        "child": ("succeeded", "workflow"),
        "slow": ("cancelled", "manual"),
    }
    assert {k: (r["status"], r["trigger_type"]) for k, r in runs.items()} == expected
    return {**runs, "check": check, "caller": caller}


async def test_run_history_filters_alone_combined_and_paged(weft: WeftServer) -> None:
    # Given a history with every status and trigger
    h = await history(weft)
    run = {k: h[k]["id"] for k in ("ok", "bad", "hook", "again", "parent", "child", "slow")}
    newest_first = [run[k] for k in ("slow", "child", "parent", "again", "hook", "bad", "ok")]
    assert await ids(weft, "/runs") == newest_first

    def only(*names: str) -> list[str]:
        return [i for i in newest_first if i in {run[n] for n in names}]

    # Status: one, repeated, comma-separated, or both
    assert await ids(weft, "/runs", status="failed") == only("bad", "again")
    both = only("bad", "again", "slow")
    assert await ids(weft, "/runs", status=["failed", "cancelled"]) == both
    assert await ids(weft, "/runs", status="failed,cancelled") == both
    assert await ids(weft, "/runs", status=["cancelled", " failed,running"]) == both
    assert await ids(weft, "/runs", status="pending") == []
    # Trigger type
    assert await ids(weft, "/runs", trigger_type="webhook") == only("hook")
    assert await ids(weft, "/runs", trigger_type="rerun,workflow") == only("again", "child")
    # Parent run
    assert await ids(weft, "/runs", parent_run_id=run["parent"]) == only("child")
    assert await ids(weft, "/runs", parent_run_id=run["ok"]) == []
    # Creation time: since inclusive, until exclusive, in any zone
    at = datetime.fromisoformat(h["hook"]["created_at"])
    assert await ids(weft, "/runs", since=at.isoformat()) == only(
        "hook", "again", "parent", "child", "slow"
    )
    assert await ids(weft, "/runs", until=at.isoformat()) == only("ok", "bad")
    zulu = at.isoformat().replace("+00:00", "Z")
    assert await ids(weft, "/runs", until=zulu) == only("ok", "bad")
    elsewhere = at.astimezone(timezone(timedelta(hours=-5, minutes=-30))).isoformat()
    assert await ids(weft, "/runs", until=elsewhere) == only("ok", "bad")
    later = datetime.fromisoformat(h["parent"]["created_at"]).isoformat()
    assert await ids(weft, "/runs", since=at.isoformat(), until=later) == only("hook", "again")
    # Combined
    assert await ids(weft, "/runs", status="failed", trigger_type="manual") == only("bad")
    assert await ids(weft, "/runs", status="succeeded", since=at.isoformat()) == only(
        "hook", "parent", "child"
    )
    assert await ids(weft, "/runs", status="succeeded", trigger_type="webhook", until=zulu) == []

    # One workflow's history takes the same filters
    path = f"/workflows/{h['check']['id']}/runs"
    assert await ids(weft, path, status="failed") == only("bad", "again")
    assert await ids(weft, path, trigger_type="workflow") == only("child")
    assert await ids(weft, path, parent_run_id=run["parent"]) == only("child")
    assert await ids(weft, path, status="succeeded", since=at.isoformat()) == only("hook", "child")
    assert await ids(weft, f"/workflows/{h['caller']['id']}/runs", status="failed") == []

    # Paging goes on within the filters
    page = (
        await weft.client.get("/runs", params={"status": "failed,cancelled", "limit": 2})
    ).json()
    assert [r["id"] for r in page["items"]] == only("again", "slow")
    assert page["next_before"] == run["again"]
    params = {"status": "failed,cancelled", "limit": 2, "before": page["next_before"]}
    page = (await weft.client.get("/runs", params=params)).json()
    assert [r["id"] for r in page["items"]] == only("bad")
    assert page["next_before"] is None
    params = {"status": "succeeded", "limit": 1, "before": run["child"]}
    assert await ids(weft, path, **params) == only("hook")


BAD_RUN_FILTERS = [
    ("status=done", "status"),
    ("status=failed,", "status"),
    ("status=failed&status=", "status"),
    ("trigger_type=cron", "trigger_type"),
    ("since=2024-05-01T12:00:00", "since"),  # no time zone
    ("since=2024-05-01", "since"),
    ("until=yesterday", "until"),
    ("until=1714564800", "until"),
    ("since=9999-12-31T23:00:00-02:00", "since"),  # past the last instant
    ("parent_run_id=nope", "parent_run_id"),
]


async def test_bad_run_filters_are_422_naming_the_field(weft: WeftServer) -> None:
    workflow = await weft.create_workflow(ONE)
    for query, field in BAD_RUN_FILTERS:
        for path in ("/runs", f"/workflows/{workflow['id']}/runs"):
            response = await weft.client.get(f"{path}?{query}")
            assert response.status_code == 422, (path, query, response.text)
            error = response.json()["error"]
            assert error["code"] == "invalid_request"
            assert [d["field"].split(".")[0] for d in error["details"]] == [field], error
    unknown = "/workflows/00000000-0000-4000-8000-000000000000/runs?status=failed"
    assert (await weft.client.get(unknown)).status_code == 404


async def test_description_and_tags_on_create_put_and_list(weft: WeftServer) -> None:
    # Created with a description and tags (repeats dropped, order kept)
    tags = ["reports", "team:data", "reports", "v1.2/beta"]
    created = await weft.create_workflow(ONE, description="Mails the daily report.", tags=tags)
    assert (created["description"], created["tags"]) == (
        "Mails the daily report.",
        ["reports", "team:data", "v1.2/beta"],
    )
    path = f"/workflows/{created['id']}"
    fetched = (await weft.client.get(path)).json()
    assert (fetched["description"], fetched["tags"]) == (created["description"], created["tags"])
    plain = await weft.create_workflow(ONE)
    assert (plain["description"], plain["tags"]) == ("", [])
    listed = {w["id"]: w for w in (await weft.client.get("/workflows")).json()["items"]}
    assert listed[created["id"]]["tags"] == created["tags"]

    # A PUT that omits them keeps them, and the workflow's channel hears of it
    updates = weft.system.weft.workflow_messages(UUID(created["id"]))
    try:
        with anyio.fail_after(5):
            snapshot = await anext(updates)
            assert snapshot is not None
            assert snapshot.to_json()["workflow"]["tags"] == created["tags"]
            kept = await weft.client.put(path, json={"name": "renamed", "graph": ONE})
            assert kept.status_code == 200, kept.text
            assert (kept.json()["description"], kept.json()["tags"]) == (
                created["description"],
                created["tags"],
            )
            event = await anext(updates)
        assert event is not None
        assert event.to_json()["type"] == "workflow.updated"
        assert event.to_json()["workflow"]["description"] == created["description"]
        assert event.to_json()["workflow"]["tags"] == created["tags"]
    finally:
        await updates.aclose()  # type: ignore[attr-defined]

    # Sent, they replace what was there; empty clears them
    body = {"name": "renamed", "graph": ONE, "description": "New.", "tags": ["ops"]}
    changed = (await weft.client.put(path, json=body)).json()
    assert (changed["description"], changed["tags"]) == ("New.", ["ops"])
    body = {"name": "renamed", "graph": ONE, "description": "", "tags": []}
    cleared = (await weft.client.put(path, json=body)).json()
    assert (cleared["description"], cleared["tags"]) == ("", [])

    # Refused: each problem names its field, and nothing is written
    bad_bodies: list[tuple[dict[str, Any], str | None]] = [
        ({"description": "x" * 2001}, "description"),
        ({"description": "a\u0000b"}, None),
        ({"description": None}, "description"),
        ({"tags": [f"t{i}" for i in range(21)]}, "tags"),
        ({"tags": ["ok", "no!"]}, "tags.1"),
        ({"tags": ["trailing "]}, "tags.0"),
        ({"tags": [""]}, "tags.0"),
        ({"tags": ["x" * 51]}, "tags.0"),
        ({"tags": "ops"}, "tags"),
    ]
    for extra, field in bad_bodies:
        for method, url in (("POST", "/workflows"), ("PUT", path)):
            response = await weft.client.request(
                method, url, json={"name": "bad", "graph": ONE, **extra}
            )
            assert response.status_code == 422, (extra, response.text)
            details = response.json()["error"]["details"]
            assert field is None or [d["field"] for d in details] == [field], details
    assert (await weft.client.get(path)).json()["tags"] == []


async def test_workflows_found_by_name_and_tag_with_their_total(weft: WeftServer) -> None:
    names_and_tags = [
        ("Daily report", ["reports", "team:data"]),
        ("weekly REPORT", ["reports"]),
        ("100% done_ok", ["misc"]),
        ("100x done-ok", ["misc", "team:data"]),
        ("Ingest", []),
    ]
    made = {n: (await weft.create_workflow(ONE, name=n, tags=t))["id"] for n, t in names_and_tags}

    async def found(**params: Any) -> tuple[list[str], int]:
        response = await weft.client.get("/workflows", params=params)
        assert response.status_code == 200, response.text
        body = response.json()
        return [w["name"] for w in body["items"]], body["total"]

    # Newest first; q is a substring in any case, % and _ are plain characters
    assert await found(q="report") == (["weekly REPORT", "Daily report"], 2)
    assert await found(q="RePoRt") == (["weekly REPORT", "Daily report"], 2)
    assert await found(q="%") == (["100% done_ok"], 1)
    assert await found(q="_") == (["100% done_ok"], 1)
    assert await found(q="100%") == (["100% done_ok"], 1)
    assert await found(q="nothing") == ([], 0)
    assert await found(q="") == ([n for n, _ in reversed(names_and_tags)], 5)
    # tag: exact
    assert await found(tag="team:data") == (["100x done-ok", "Daily report"], 2)
    assert await found(tag="team") == ([], 0)
    assert await found(tag="reports", q="daily") == (["Daily report"], 1)
    # total counts the filtered set, whatever the page
    assert await found(tag="misc", limit=1) == (["100x done-ok"], 2)
    assert await found(tag="misc", limit=1, offset=1) == (["100% done_ok"], 2)
    # A PUT moves a workflow to the front of the list
    put = {"name": "Daily report", "graph": ONE}
    await weft.client.put(f"/workflows/{made['Daily report']}", json=put)
    assert (await found(q="report"))[0] == ["Daily report", "weekly REPORT"]
    # Bad filters
    for query, field in [("tag=bad!", "tag"), ("tag=", "tag"), ("q=a%00b", "q"),
                         (f"q={'x' * 201}", "q")]:  # fmt: skip
        response = await weft.client.get(f"/workflows?{query}")
        assert response.status_code == 422, (query, response.text)
        assert [d["field"] for d in response.json()["error"]["details"]] == [field]


async def test_duplicate_copies_the_workflow_but_not_its_secret_slug_or_runs(
    weft: WeftServer,
) -> None:
    # Given a workflow with everything set, and a run
    graph = {
        "nodes": [{"id": "start", "type": "start", "position": {"x": 3, "y": 4}}],
        "edges": [],
    }
    original = await weft.create_workflow(
        graph,
        name="Nightly",
        description="Runs at night.",
        tags=["ops", "nightly"],
        max_concurrency=2,
        durability="async",
        webhook_secret="s3cret",
    )
    await weft.run(original["id"])

    # When it is duplicated without a body
    response = await weft.client.post(f"/workflows/{original['id']}/duplicate")
    assert response.status_code == 201, response.text
    copy = response.json()

    # Then the copy has its graph and settings, a name of its own, a new slug, no secret
    # and no runs
    assert copy["name"] == "Nightly (copy)"
    assert copy["id"] != original["id"]
    assert copy["webhook_slug"] != original["webhook_slug"]
    assert copy["webhook_url"] == f"/hooks/{copy['webhook_slug']}"
    assert copy["has_webhook_secret"] is False
    same = ("graph", "description", "tags", "max_concurrency", "durability")
    assert {k: copy[k] for k in same} == {k: original[k] for k in same}
    assert copy == (await weft.client.get(f"/workflows/{copy['id']}")).json()
    assert await ids(weft, f"/workflows/{copy['id']}/runs") == []
    assert len(await ids(weft, f"/workflows/{original['id']}/runs")) == 1
    # Its webhook takes unsigned calls; the original's still wants the signature
    assert (await weft.client.post(f"/hooks/{copy['webhook_slug']}")).status_code == 202
    assert (await weft.client.post(f"/hooks/{original['webhook_slug']}")).status_code == 401
    assert (await weft.client.get(f"/workflows/{original['id']}")).json() == original

    # A name may be given; a long name's copy stays a valid name
    named = await weft.client.post(f"/workflows/{original['id']}/duplicate", json={"name": "Mine"})
    assert (named.status_code, named.json()["name"]) == (201, "Mine")
    long = await weft.create_workflow(ONE, name="n" * MAX_NAME_LENGTH)
    copied = (await weft.client.post(f"/workflows/{long['id']}/duplicate", json={})).json()
    assert copied["name"] == "n" * (MAX_NAME_LENGTH - 7) + " (copy)"
    nulled = await weft.client.post(f"/workflows/{long['id']}/duplicate", json={"name": None})
    assert nulled.json()["name"] == copied["name"]

    # Unknown workflow: 404; a bad body: 422 (400 when it is no JSON); nothing is created
    before = (await weft.client.get("/workflows")).json()["total"]
    unknown = "/workflows/00000000-0000-4000-8000-000000000000/duplicate"
    assert (await weft.client.post(unknown)).status_code == 404
    for body, field in [({"name": ""}, "name"), ({"name": 5}, "name"),
                        ({"name": "x" * 201}, "name"), ({"nme": "typo"}, "nme")]:  # fmt: skip
        response = await weft.client.post(f"/workflows/{original['id']}/duplicate", json=body)
        assert response.status_code == 422, (body, response.text)
        assert [d["field"] for d in response.json()["error"]["details"]] == [field]
    malformed = await weft.client.post(f"/workflows/{original['id']}/duplicate", content=b"{")
    assert malformed.status_code == 400
    assert (await weft.client.get("/workflows")).json()["total"] == before
