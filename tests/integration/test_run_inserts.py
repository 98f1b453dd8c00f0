"""Runs that concurrent requests start are inserted in groups (runner/store/run_inserts.py):
each caller still gets exactly its own answer, as an insert of its own would give it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID, uuid4

import anyio
import asyncpg
import pytest

from runner.errors import HookChangedError, WorkflowNotFoundError
from runner.models import Hook, Lineage, Run, Workflow
from runner.store.db import Database
from runner.store.postgres import PostgresStore
from runner.store.run_inserts import RunInserts

pytestmark = pytest.mark.anyio

OWNER = uuid4()
GRAPH = {
    "nodes": [
        {"id": "a", "type": "start"},
        {"id": "b", "type": "transform", "params": {"template": "{}"}},
    ],
    "edges": [{"id": "e", "from": "a", "to": "b"}],
}


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    db = await Database.connect(database_url, min_size=1, max_size=4)
    try:
        yield db
    finally:
        await db.close()


@pytest.fixture
async def store(db: Database) -> AsyncIterator[PostgresStore]:
    """A store whose inserts are being served in groups."""
    inserts = RunInserts(db)
    async with anyio.create_task_group() as tg:
        await tg.start(inserts.serve)
        yield PostgresStore(db, inserts=inserts)
        tg.cancel_scope.cancel()


async def new_workflow(store: PostgresStore, **options: Any) -> Workflow:
    return await store.create_workflow(
        workflow_id=uuid4(),
        name="grouped",
        webhook_slug=f"g-{uuid4().hex[:8]}",
        webhook_secret=None,
        graph=GRAPH,
        **options,
    )


async def start_at_once(
    store: PostgresStore, calls: list[dict[str, Any]]
) -> list[tuple[Run, bool] | BaseException]:
    """insert_run for each of `calls`, all begun in the same turn of the event loop."""
    answers: list[tuple[Run, bool] | BaseException] = [ValueError("not answered")] * len(calls)

    async def one(i: int, call: dict[str, Any]) -> None:
        try:
            answers[i] = await store.insert_run(
                run_id=uuid4(), lease_owner=OWNER, lease_s=30, trigger_type="manual", **call
            )
        except Exception as exc:
            answers[i] = exc

    async with anyio.create_task_group() as tg:
        for i, call in enumerate(calls):
            tg.start_soon(one, i, call)
    return answers


async def transactions_of(database_url: str, run_ids: list[UUID]) -> int:
    """How many transactions inserted these runs (rows of one share their xmin)."""
    conn = await asyncpg.connect(database_url)
    try:
        return int(
            await conn.fetchval(
                "SELECT count(DISTINCT xmin::text) FROM runs WHERE id = ANY($1::uuid[])",
                run_ids,
            )
        )
    finally:
        await conn.close()


async def test_concurrent_starts_share_one_insert_and_each_gets_its_run(
    store: PostgresStore, database_url: str
) -> None:
    workflow = await new_workflow(store)
    payloads = [{"n": i} for i in range(20)]
    answers = await start_at_once(
        store, [{"workflow_id": workflow.id, "trigger_payload": p} for p in payloads]
    )
    runs = [a for a in answers if not isinstance(a, BaseException)]
    assert len(runs) == 20
    assert all(created for _, created in runs)
    assert [run.trigger_payload for run, _ in runs] == payloads
    assert all(run.lease_owner == OWNER for run, _ in runs)
    ids = [run.id for run, _ in runs]
    assert await transactions_of(database_url, ids) == 1
    # Created in the order they were asked for, each with its node runs.
    newest_first = await store.list_runs(limit=50, before=None, workflow_id=workflow.id)
    assert [r.id for r in newest_first] == ids[::-1]
    for run_id in ids:
        assert [n.node_id for n in await store.list_node_runs(run_id)] == ["a", "b"]


async def test_a_repeated_idempotency_key_in_one_group_starts_one_run(
    store: PostgresStore,
) -> None:
    workflow = await new_workflow(store)
    call = {"workflow_id": workflow.id, "trigger_payload": {}, "idempotency_key": "k-1"}
    answers = await start_at_once(store, [call, call, call])
    runs = [a for a in answers if not isinstance(a, BaseException)]
    assert len(runs) == 3
    assert len({run.id for run, _ in runs}) == 1
    assert sorted(created for _, created in runs) == [False, False, True]


async def test_each_call_in_a_group_gets_its_own_refusal(store: PostgresStore) -> None:
    workflow = await new_workflow(store)
    stale = Hook(slug="not-its-slug", workflow_id=workflow.id, secret=None)
    limited = await new_workflow(store, max_concurrency=1)
    answers = await start_at_once(
        store,
        [
            {"workflow_id": workflow.id, "trigger_payload": {"ok": 1}},
            {"workflow_id": workflow.id, "trigger_payload": {}, "hook": stale},
            {"workflow_id": uuid4(), "trigger_payload": {}},
            {"workflow_id": limited.id, "trigger_payload": {"ok": 2}},
        ],
    )
    ok, changed, missing, pending = answers
    assert not isinstance(ok, BaseException)
    assert ok[0].trigger_payload == {"ok": 1}
    assert isinstance(changed, HookChangedError)
    assert isinstance(missing, WorkflowNotFoundError)
    # A workflow with a limit is not leased here: its runs wait to be claimed.
    assert not isinstance(pending, BaseException)
    assert pending[0].lease_owner is None


async def test_a_run_that_fails_its_group_fails_only_its_caller(
    store: PostgresStore, database_url: str
) -> None:
    workflow = await new_workflow(store)
    good = {"workflow_id": workflow.id, "trigger_payload": {}}
    # Too deep for the integer column: the group's statement fails, each run goes alone.
    bad = {**good, "lineage": Lineage(depth=2**40)}
    answers = await start_at_once(store, [good, bad, good])
    assert isinstance(answers[1], BaseException)
    ids = [a[0].id for a in (answers[0], answers[2]) if not isinstance(a, BaseException)]
    assert len(ids) == 2
    assert await transactions_of(database_url, ids) == 2


async def test_without_serving_each_run_is_inserted_alone(db: Database, database_url: str) -> None:
    store = PostgresStore(db, inserts=RunInserts(db))
    workflow = await new_workflow(store)
    answers = await start_at_once(
        store, [{"workflow_id": workflow.id, "trigger_payload": {}} for _ in range(3)]
    )
    ids = [a[0].id for a in answers if not isinstance(a, BaseException)]
    assert len(ids) == 3
    assert await transactions_of(database_url, ids) == 3


async def test_a_group_waiting_on_a_lock_holds_up_only_its_own_runs(
    store: PostgresStore, database_url: str
) -> None:
    locked, free = await new_workflow(store), await new_workflow(store)
    holder = await asyncpg.connect(database_url)
    try:
        # Another transaction holds the workflow's row (as a delete of it would)
        transaction = holder.transaction()
        await transaction.start()
        await holder.execute("SELECT 1 FROM workflows WHERE id = $1 FOR UPDATE", locked.id)
        answers: list[Any] = []

        async def start_locked() -> None:
            call = {"workflow_id": locked.id, "trigger_payload": {}}
            answers.append(await start_at_once(store, [call]))

        async with anyio.create_task_group() as tg:
            tg.start_soon(start_locked)  # its insert waits for the row
            await anyio.sleep(0.2)
            # Then another workflow's run starts meanwhile
            with anyio.fail_after(5):
                (other,) = await start_at_once(
                    store, [{"workflow_id": free.id, "trigger_payload": {}}]
                )
            assert not isinstance(other, BaseException)
            assert answers == []  # the locked one still waits
            await transaction.rollback()
        ((run, created),) = answers[0]
        assert created
        assert run.workflow_id == locked.id
    finally:
        await holder.close()


async def test_two_processes_inserting_the_same_keys_start_each_once(
    db: Database, database_url: str
) -> None:
    # Given two processes' stores, each grouping its own inserts
    first, second = RunInserts(db), RunInserts(db)
    async with anyio.create_task_group() as tg:
        await tg.start(first.serve)
        await tg.start(second.serve)
        a, b = PostgresStore(db, inserts=first), PostgresStore(db, inserts=second)
        workflow = await new_workflow(a)
        keys = [f"k-{i}" for i in range(8)]

        def calls(order: list[str]) -> list[dict[str, Any]]:
            return [
                {"workflow_id": workflow.id, "trigger_payload": {}, "idempotency_key": k}
                for k in order
            ]

        # When both insert the same keys at once, in opposite orders
        answers: dict[str, list[Any]] = {}

        async def go(name: str, store: PostgresStore, order: list[str]) -> None:
            answers[name] = await start_at_once(store, calls(order))

        async with anyio.create_task_group() as both:
            both.start_soon(go, "a", a, keys)
            both.start_soon(go, "b", b, keys[::-1])
        tg.cancel_scope.cancel()
    # Then every caller has an answer, and each key started one run
    pairs = list(zip(keys, answers["a"], strict=True))
    pairs += list(zip(keys[::-1], answers["b"], strict=True))
    runs = [(key, x) for key, x in pairs if not isinstance(x, BaseException)]
    assert len(runs) == 16
    by_key: dict[str, set[UUID]] = {}
    for key, (run, _) in runs:
        by_key.setdefault(key, set()).add(run.id)
    assert sorted(by_key) == sorted(keys)
    assert all(len(ids) == 1 for ids in by_key.values())
    assert sum(created for _, (_, created) in runs) == 8


async def test_a_payload_postgresql_refuses_goes_alone_and_the_rest_share_a_group(
    store: PostgresStore, database_url: str
) -> None:
    workflow = await new_workflow(store)
    good = {"workflow_id": workflow.id, "trigger_payload": {"ok": True}}
    nul = {"workflow_id": workflow.id, "trigger_payload": {"text": "a\x00b"}}
    answers = await start_at_once(store, [good, nul, good])
    assert isinstance(answers[1], BaseException)
    ids = [a[0].id for a in (answers[0], answers[2]) if not isinstance(a, BaseException)]
    assert len(ids) == 2
    assert await transactions_of(database_url, ids) == 1
