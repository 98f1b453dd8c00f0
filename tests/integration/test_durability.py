"""Retries, timeouts, cancellation, queueing, idempotency, ?wait, signatures, tokens, CORS,
and the output cap, through a real server."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from pydantic import BaseModel
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from blocks import RunContext, standard_registry
from tests.support import WeftServer, run_weft_server, wait_until

pytestmark = pytest.mark.anyio


class FlakyParams(BaseModel):
    key: str
    fail_times: int = 0
    sleep_s: float = 0.0


def flaky_registry(counts: dict[str, int]) -> Any:
    """A block that fails its first `fail_times` attempts (per key), counting attempts."""
    registry = standard_registry()

    @registry.register("flaky", FlakyParams)
    async def flaky(input: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        """Fails a few times, then succeeds."""
        params = ctx.params_as(FlakyParams)
        counts[params.key] = counts.get(params.key, 0) + 1
        await anyio.sleep(params.sleep_s)
        if counts[params.key] <= params.fail_times:
            raise ConnectionError(f"flaky failure {counts[params.key]}")
        return {"attempt": ctx.attempt, "calls": counts[params.key]}

    return registry


@pytest.fixture
async def flaky_weft(
    database_url: str, tmp_path: Path
) -> AsyncIterator[tuple[WeftServer, dict[str, int]]]:
    counts: dict[str, int] = {}
    async with run_weft_server(database_url, tmp_path, registry=flaky_registry(counts)) as weft:
        yield weft, counts


def one(node: dict[str, Any]) -> dict[str, Any]:
    return {"nodes": [node], "edges": []}


async def test_retries_count_attempts_and_log_each(
    flaky_weft: tuple[WeftServer, dict[str, int]],
) -> None:
    weft, counts = flaky_weft
    node = {
        "id": "f",
        "type": "flaky",
        "params": {"key": "a", "fail_times": 2, "retries": 3, "retry_backoff": 0.01},
    }
    run = await weft.run((await weft.create_workflow(one(node)))["id"])
    assert run["status"] == "succeeded"
    assert run["outputs"]["f"] == {"attempt": 3, "calls": 3}
    nodes = await weft.nodes(run["id"])
    assert nodes["f"]["attempt"] == 3
    logs = (await weft.client.get(f"/runs/{run['id']}/logs")).json()["items"]
    retries = [line["message"] for line in logs if "retrying" in line["message"]]
    assert len(retries) == 2
    assert retries[0].startswith("attempt 1 of 4 failed: ConnectionError: flaky failure 1")

    # Out of retries: the node fails with its last error, after every attempt
    node["params"] = {"key": "b", "fail_times": 5, "retries": 1, "retry_backoff": 0.01}
    run = await weft.run((await weft.create_workflow(one(node)))["id"])
    assert run["status"] == "failed"
    assert run["error"]["type"] == "ConnectionError"
    assert run["error"]["message"] == "flaky failure 2"
    assert counts["b"] == 2
    assert (await weft.nodes(run["id"]))["f"]["attempt"] == 2


async def test_timeout_is_an_error_of_its_own_kind(
    flaky_weft: tuple[WeftServer, dict[str, int]],
) -> None:
    weft, counts = flaky_weft
    node = {"id": "slow", "type": "delay", "params": {"seconds": 5, "timeout_s": 0.2}}
    run = await weft.run((await weft.create_workflow(one(node)))["id"])
    assert run["status"] == "failed"
    assert run["error"]["type"] == "NodeTimeoutError"
    assert "timeout of 0.2 s" in run["error"]["message"]
    assert run["duration_ms"] < 4000

    # A timed-out attempt is retried like any failure
    node = {
        "id": "f",
        "type": "flaky",
        "params": {"key": "t", "sleep_s": 0.3, "timeout_s": 0.1, "retries": 1, "retry_backoff": 0},
    }
    run = await weft.run((await weft.create_workflow(one(node)))["id"])
    assert run["status"] == "failed"
    assert counts["t"] == 2


async def test_invalid_policy_params_are_422(weft: WeftServer) -> None:
    node = {"id": "d", "type": "delay", "params": {"seconds": 1, "retries": -1, "timeout_s": 0}}
    response = await weft.client.post("/validate-graph", json=one(node))
    assert response.status_code == 422
    fields = sorted(p["field"] for p in response.json()["error"]["details"])
    assert fields == ["params.retries", "params.timeout_s"]


async def test_cancel_a_running_run(weft: WeftServer) -> None:
    graph = {
        "nodes": [
            {"id": "start", "type": "start"},
            {"id": "slow", "type": "delay", "params": {"seconds": 30}},
            {"id": "after", "type": "transform", "params": {"template": "x"}},
        ],
        "edges": [
            {"id": "a", "from": "start", "to": "slow"},
            {"id": "b", "from": "slow", "to": "after"},
        ],
    }
    workflow = await weft.create_workflow(graph)
    run_id = (await weft.client.post(f"/workflows/{workflow['id']}/run")).json()["id"]

    async def slow_running() -> bool:
        return bool((await weft.nodes(run_id)).get("slow", {}).get("status") == "running")

    await wait_until(slow_running)

    response = await weft.client.post(f"/runs/{run_id}/cancel")
    assert response.status_code == 200
    run = response.json()
    assert run["status"] == "cancelled"
    statuses = {k: v["status"] for k, v in (await weft.nodes(run_id)).items()}
    assert statuses == {"start": "succeeded", "slow": "cancelled", "after": "cancelled"}
    assert run["outputs"] == {"start": {"data": {}}}

    # Idempotent
    again = await weft.client.post(f"/runs/{run_id}/cancel")
    assert again.status_code == 200
    assert again.json()["status"] == "cancelled"


async def test_cancelling_a_finished_run_is_409(weft: WeftServer) -> None:
    run = await weft.run((await weft.create_workflow(one({"id": "s", "type": "start"})))["id"])
    response = await weft.client.post(f"/runs/{run['id']}/cancel")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "run_finished"
    missing = await weft.client.post(f"/runs/{uuid.uuid4()}/cancel")
    assert missing.status_code == 404


async def test_max_concurrency_queues_runs_in_order(weft: WeftServer) -> None:
    node = {"id": "d", "type": "delay", "params": {"seconds": 0.2}}
    response = await weft.client.post(
        "/workflows", json={"name": "limited", "graph": one(node), "max_concurrency": 2}
    )
    assert response.status_code == 201
    workflow = response.json()
    assert workflow["max_concurrency"] == 2
    run_ids = []
    for _ in range(5):
        run_ids.append((await weft.client.post(f"/workflows/{workflow['id']}/run")).json()["id"])
    # The third waits as pending while two run
    statuses = [(await weft.client.get(f"/runs/{r}")).json()["status"] for r in run_ids]
    assert statuses.count("pending") >= 3
    # One queued run is cancelled: its slot is never taken, the others still run
    cancelled = await weft.client.post(f"/runs/{run_ids[3]}/cancel")
    assert cancelled.json()["status"] == "cancelled"

    runs = [await weft.wait(r) for r in run_ids]
    assert [r["status"] for r in runs] == [
        "succeeded",
        "succeeded",
        "succeeded",
        "cancelled",
        "succeeded",
    ]
    done = [r for r in runs if r["status"] == "succeeded"]
    # Never more than two at once, and started in the order they were submitted
    intervals = sorted((r["started_at"], r["finished_at"]) for r in done)
    for i, (start, _) in enumerate(intervals):
        overlapping = [1 for s, f in intervals if s <= start < f]
        assert len(overlapping) <= 2, intervals
        assert start == sorted(r["started_at"] for r in done)[i]
    assert [r["started_at"] for r in done] == sorted(r["started_at"] for r in done)


async def test_failing_runs_release_their_slot(weft: WeftServer) -> None:
    bad = {"id": "t", "type": "transform", "params": {"template": "{{ trigger.nope }}"}}
    response = await weft.client.post(
        "/workflows", json={"name": "limited", "graph": one(bad), "max_concurrency": 1}
    )
    workflow = response.json()
    ids = [
        (await weft.client.post(f"/workflows/{workflow['id']}/run")).json()["id"] for _ in range(3)
    ]
    assert [(await weft.wait(i))["status"] for i in ids] == ["failed"] * 3


async def test_idempotency_key_under_concurrent_duplicates(weft: WeftServer) -> None:
    workflow = await weft.create_workflow(one({"id": "s", "type": "start"}))
    results: list[tuple[int, str]] = []

    async def fire(path: str, key: str) -> None:
        response = await weft.client.post(
            path, json={"start_input": 1}, headers={"Idempotency-Key": key}
        )
        assert response.status_code in (200, 202), response.text
        results.append((response.status_code, response.json()["id"]))

    for path in (f"/hooks/{workflow['webhook_slug']}", f"/workflows/{workflow['id']}/run"):
        results.clear()
        key = f"key-{path}"
        async with anyio.create_task_group() as tg:
            for _ in range(20):
                tg.start_soon(fire, path, key)
        assert len({run_id for _, run_id in results}) == 1
        assert sorted(status for status, _ in results).count(202) == 1
        assert sorted(status for status, _ in results).count(200) == 19
        await weft.wait(results[0][1])
    runs = (await weft.client.get(f"/workflows/{workflow['id']}/runs")).json()["items"]
    assert len(runs) == 2

    # The same key on another workflow is another run
    other = await weft.create_workflow(one({"id": "s", "type": "start"}))
    response = await weft.client.post(
        f"/workflows/{other['id']}/run", headers={"Idempotency-Key": "key-shared"}
    )
    first = await weft.client.post(
        f"/workflows/{workflow['id']}/run", headers={"Idempotency-Key": "key-shared"}
    )
    assert response.json()["id"] != first.json()["id"]
    empty = await weft.client.post(
        f"/workflows/{workflow['id']}/run", headers={"Idempotency-Key": "x" * 201}
    )
    assert empty.status_code == 400


async def test_wait_answers_the_finished_run(weft: WeftServer) -> None:
    quick = await weft.create_workflow(one({"id": "s", "type": "start"}))
    response = await weft.client.post(
        f"/workflows/{quick['id']}/run?wait=10", json={"start_input": 3}
    )
    assert response.status_code == 200
    assert response.json()["status"] == "succeeded"
    assert response.json()["outputs"] == {"s": {"data": 3}}
    response = await weft.client.post(f"/hooks/{quick['webhook_slug']}?wait=10", json={"a": 1})
    assert response.status_code == 200
    assert response.json()["outputs"] == {"s": {"data": {"a": 1}}}

    slow = await weft.create_workflow(one({"id": "d", "type": "delay", "params": {"seconds": 2}}))
    response = await weft.client.post(f"/workflows/{slow['id']}/run?wait=0.1")
    assert response.status_code == 202
    assert response.json()["status"] in ("pending", "running")
    bad = await weft.client.post(f"/workflows/{slow['id']}/run?wait=-1")
    assert bad.status_code == 422


async def test_webhook_signature(weft: WeftServer) -> None:
    workflow = await weft.create_workflow(
        one({"id": "s", "type": "start"}), webhook_secret="s3cret"
    )
    assert workflow["has_webhook_secret"] is True
    assert "webhook_secret" not in workflow
    body = json.dumps({"order": 1}).encode()
    good = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    url = f"/hooks/{workflow['webhook_slug']}"
    headers = {"content-type": "application/json"}

    accepted = await weft.client.post(
        url, content=body, headers={**headers, "X-Weft-Signature": good}
    )
    assert accepted.status_code == 202
    assert (await weft.wait(accepted.json()["id"]))["trigger_payload"] == {"order": 1}

    for signature, code in (
        (None, "signature_required"),
        ("sha256=" + "0" * 64, "bad_signature"),
        (good + "x", "bad_signature"),
    ):
        extra = {} if signature is None else {"X-Weft-Signature": signature}
        rejected = await weft.client.post(url, content=body, headers={**headers, **extra})
        assert rejected.status_code == 401
        assert rejected.json()["error"]["code"] == code
    tampered = await weft.client.post(
        url, content=body.replace(b"1", b"2"), headers={**headers, "X-Weft-Signature": good}
    )
    assert tampered.status_code == 401
    assert len((await weft.client.get(f"/workflows/{workflow['id']}/runs")).json()["items"]) == 1

    # PUT keeps the secret unless it is given; null clears it
    put = {"name": "x", "graph": one({"id": "s", "type": "start"})}
    assert (await weft.client.put(f"/workflows/{workflow['id']}", json=put)).json()[
        "has_webhook_secret"
    ]
    cleared = await weft.client.put(
        f"/workflows/{workflow['id']}", json={**put, "webhook_secret": None}
    )
    assert cleared.json()["has_webhook_secret"] is False
    assert (await weft.client.post(url, content=body, headers=headers)).status_code == 202


async def test_webhook_changed_by_another_process(
    weft: WeftServer, database_url: str, tmp_path: Path
) -> None:
    """A process remembers webhooks it has served; a change made by another process (a new
    secret, a moved slug) is still honoured at once, and no run starts on a stale copy."""

    def signed(secret: bytes, body: bytes) -> dict[str, str]:
        signature = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
        return {"content-type": "application/json", "X-Weft-Signature": signature}

    graph = one({"id": "s", "type": "start"})
    workflow = await weft.create_workflow(graph, webhook_secret="old")
    url, body = f"/hooks/{workflow['webhook_slug']}", b'{"n": 1}'
    assert (
        await weft.client.post(url, content=body, headers=signed(b"old", body))
    ).status_code == 202

    async def runs() -> int:
        page = (await weft.client.get(f"/workflows/{workflow['id']}/runs")).json()
        return len(page["items"])

    async with run_weft_server(database_url, tmp_path / "other") as other:
        put = {"name": "x", "graph": graph, "webhook_secret": "new"}
        assert (await other.client.put(f"/workflows/{workflow['id']}", json=put)).status_code == 200
        new_secret = await weft.client.post(url, content=body, headers=signed(b"new", body))
        assert new_secret.status_code == 202
        old_secret = await weft.client.post(url, content=body, headers=signed(b"old", body))
        assert old_secret.status_code == 401
        assert old_secret.json()["error"]["code"] == "bad_signature"
        assert await runs() == 2

        moved = {**put, "webhook_slug": f"moved-{workflow['webhook_slug']}"}
        assert (
            await other.client.put(f"/workflows/{workflow['id']}", json=moved)
        ).status_code == 200
        gone = await weft.client.post(url, content=body, headers=signed(b"new", body))
        assert gone.status_code == 404
        assert gone.json()["error"]["code"] == "hook_not_found"
        assert await runs() == 2
        new_url = f"/hooks/{moved['webhook_slug']}"
        headers = {**signed(b"new", body), "Idempotency-Key": "k"}
        first = await weft.client.post(new_url, content=body, headers=headers)
        again = await weft.client.post(new_url, content=body, headers=headers)
        assert (first.status_code, again.status_code) == (202, 200)
        assert again.json()["id"] == first.json()["id"]
        assert again.headers["Idempotent-Replayed"] == "true"
        assert await runs() == 3


async def test_api_token(database_url: str, tmp_path: Path) -> None:
    async with run_weft_server(database_url, tmp_path, weft_api_token="t0ken") as weft:
        anonymous = await weft.client.get("/workflows")
        assert anonymous.status_code == 401
        assert anonymous.json()["error"]["code"] == "unauthorized"
        wrong = await weft.client.get("/workflows", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        auth = {"Authorization": "Bearer t0ken"}
        created = await weft.client.post(
            "/workflows",
            json={"name": "x", "graph": one({"id": "s", "type": "start"})},
            headers=auth,
        )
        assert created.status_code == 201
        workflow = created.json()
        # open: health, hooks, the page and the API description
        assert (await weft.client.get("/healthz")).status_code == 200
        assert (await weft.client.get("/openapi.json")).status_code == 200
        hook = await weft.client.post(f"/hooks/{workflow['webhook_slug']}")
        assert hook.status_code == 202
        run_id = hook.json()["id"]
        assert (await weft.client.get(f"/runs/{run_id}")).status_code == 401
        assert (await weft.client.get(f"/runs/{run_id}", headers=auth)).status_code == 200

        ws = weft.url.replace("http://", "ws://") + f"/ws/runs/{run_id}"
        with pytest.raises(InvalidStatus) as refused:
            async with connect(ws):
                pass
        assert refused.value.response.status_code == 401
        with pytest.raises(InvalidStatus):
            async with connect(ws + "?token=wrong"):
                pass
        async with connect(ws + "?token=t0ken") as socket:
            assert json.loads(await socket.recv())["type"] == "snapshot"
        async with connect(ws, additional_headers=auth) as socket:
            assert json.loads(await socket.recv())["type"] == "snapshot"


async def test_cors(database_url: str, tmp_path: Path) -> None:
    async with run_weft_server(
        database_url, tmp_path, cors_origins="https://editor.example"
    ) as weft:
        preflight = await weft.client.options(
            "/workflows",
            headers={
                "Origin": "https://editor.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type,idempotency-key",
            },
        )
        assert preflight.headers["access-control-allow-origin"] == "https://editor.example"
        allowed = preflight.headers["access-control-allow-headers"].lower()
        assert "idempotency-key" in allowed
        response = await weft.client.get("/workflows", headers={"Origin": "https://editor.example"})
        assert response.headers["access-control-allow-origin"] == "https://editor.example"
        other = await weft.client.get("/workflows", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers


async def test_large_output_is_stored_as_an_artifact(database_url: str, tmp_path: Path) -> None:
    big = "y" * 5000
    graph = {
        "nodes": [
            {"id": "big", "type": "start", "params": {"payload": big}},
            {
                "id": "next",
                "type": "transform",
                "params": {"template": "{{ upstream.big.truncated }}"},
            },
        ],
        "edges": [{"id": "e", "from": "big", "to": "next"}],
    }
    async with run_weft_server(database_url, tmp_path, weft_max_output_bytes=1000) as weft:
        run = await weft.run((await weft.create_workflow(graph))["id"])
        assert run["status"] == "succeeded"
        output = run["outputs"]["big"]
        assert output["truncated"] is True
        assert output["size"] == len(json.dumps({"data": big}, separators=(",", ":")))
        assert run["outputs"]["next"] == {"result": True}
        artifact = await weft.client.get(f"/artifacts/{output['artifact_id']}")
        assert artifact.json() == {"data": big}


async def test_shutting_down_refuses_new_runs_with_503(weft: WeftServer) -> None:
    workflow = await weft.create_workflow(one({"id": "s", "type": "start"}))
    ws_url = weft.url.replace("http://", "ws://") + f"/ws/workflows/{workflow['id']}"
    async with connect(ws_url) as socket:
        assert json.loads(await socket.recv())["type"] == "snapshot"
        await weft.system.runtime.shutdown(grace_s=0)
        # Live sockets are told the server is going away (1001)
        with anyio.fail_after(10), pytest.raises(ConnectionClosed):
            await socket.recv()
        assert socket.close_code == 1001
    response = await weft.client.post(f"/workflows/{workflow['id']}/run")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "shutting_down"
    hook = await weft.client.post(f"/hooks/{workflow['webhook_slug']}")
    assert hook.status_code == 503
    batch = await weft.client.post(f"/workflows/{workflow['id']}/runs/batch", json={"runs": [{}]})
    assert batch.status_code == 503
