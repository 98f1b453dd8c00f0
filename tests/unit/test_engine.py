"""The engine (Runtime, Supervisor, RunExecutor, Journal) on the in-memory Store: fail-fast,
cancellation, skips through `if`, retries, timeouts, resume, queueing and drain, in
milliseconds and with no database. tests/integration proves the same against PostgreSQL."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import anyio
import httpx
import pytest
from pydantic import BaseModel

from blocks import RunContext, standard_registry
from blocks.context import BlockSettings
from blocks.registry import BlockRegistry
from runner.artifacts.artifacts import Artifacts
from runner.artifacts.blobs import LocalBlobStore
from runner.engine.services import RunLimits, RunServices
from runner.graph.shape import Graph
from runner.live.bus import EventBus
from runner.models import Durability, Lineage, NodeStatus, Run, RunStatus
from runner.runtime.runtime import Runtime
from runner.store.db import RawJson
from runner.store.memory import MemoryStore
from runner.store.memory_writer import MemoryWriter
from runner.store.protocol import ItemEnd, NodeEnd

pytestmark = pytest.mark.anyio

LIMIT_S = 10.0


class GateParams(BaseModel):
    name: str


class FlakyParams(BaseModel):
    failures: int


class NoParams(BaseModel):
    pass


class EchoParams(BaseModel):
    value: Any


@dataclass
class Blocks:
    """Test blocks the test steers: gates it opens, counters it reads."""

    entered: dict[str, anyio.Event] = field(default_factory=dict)
    gates: dict[str, anyio.Event] = field(default_factory=dict)
    calls: Counter[str] = field(default_factory=Counter)
    in_flight: int = 0
    most_in_flight: int = 0

    def gate(self, name: str) -> anyio.Event:
        return self.gates.setdefault(name, anyio.Event())

    def entry(self, name: str) -> anyio.Event:
        return self.entered.setdefault(name, anyio.Event())

    def registry(self) -> BlockRegistry:
        registry = standard_registry()

        @registry.register("gate", GateParams)
        async def gate(input: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
            """Waits until the test opens its gate."""
            name = ctx.params_as(GateParams).name
            self.calls[ctx.node_id] += 1
            self.entry(name).set()
            await self.gate(name).wait()
            return {"opened": name}

        @registry.register("flaky", FlakyParams)
        async def flaky(input: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
            """Fails its first `failures` attempts."""
            self.calls[ctx.node_id] += 1
            if ctx.attempt <= ctx.params_as(FlakyParams).failures:
                raise RuntimeError(f"flake {ctx.attempt}")
            return {"attempt": ctx.attempt}

        @registry.register("boom", NoParams)
        async def boom(input: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
            """Always fails."""
            raise RuntimeError("boom")

        @registry.register("count", NoParams)
        async def count(input: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
            """Counts its calls."""
            self.calls[ctx.node_id] += 1
            return {"calls": self.calls[ctx.node_id]}

        @registry.register("echo", EchoParams)
        async def echo(input: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
            """Echoes its value after a moment; fails on "bad"; counts calls per value."""
            value = ctx.params_as(EchoParams).value
            self.calls[f"{ctx.node_id}:{value}"] += 1
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            try:
                await anyio.sleep(0.005)
            finally:
                self.in_flight -= 1
            if value == "bad":
                raise ValueError("bad item")
            return {"value": value, "index": input["index"]}

        @registry.register("hang", NoParams)
        async def hang(input: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
            """Never returns by itself."""
            await anyio.sleep_forever()
            raise AssertionError("unreachable")

        return registry


@dataclass
class Engine:
    runtime: Runtime
    store: MemoryStore
    events: EventBus
    blocks: Blocks

    async def workflow(self, nodes: list[Any], edges: list[Any], **fields: Any) -> UUID:
        graph = Graph.model_validate({"nodes": nodes, "edges": edges})
        created = await self.runtime.workflows.create(
            name="t", graph=graph, webhook_slug=None, webhook_secret=None, **fields
        )
        return created.id

    async def start(self, workflow_id: UUID, payload: Any = None) -> UUID:
        run, _ = await self.runtime.runs.start(
            workflow_id, trigger_type="manual", payload=payload or {}
        )
        return run.id

    async def finished(self, run_id: UUID) -> Run:
        with anyio.fail_after(LIMIT_S):
            return await self.runtime.runs.wait_finished(run_id)

    async def nodes(self, run_id: UUID) -> dict[str, NodeStatus]:
        return {n.node_id: n.status for n in await self.store.list_node_runs(run_id)}


def services(
    store: MemoryStore,
    events: EventBus,
    http: httpx.AsyncClient,
    root: Path,
    limits: RunLimits | None = None,
) -> Any:
    return RunServices(
        store=store,
        events=events,
        writer=MemoryWriter(store, events.publish),
        http=http,
        artifacts=Artifacts(LocalBlobStore(root), store),
        block_settings=BlockSettings(),
        limits=limits or RunLimits(),
    )


@asynccontextmanager
async def engine(
    tmp_path: Path,
    store: MemoryStore | None = None,
    *,
    grace_s: float = 0.0,
    max_items: int = 10_000,
) -> AsyncIterator[Engine]:
    store = store or MemoryStore()
    events = EventBus()
    blocks = Blocks()
    async with httpx.AsyncClient() as http, anyio.create_task_group() as tg:
        limits = RunLimits(max_items=max_items)
        runtime = Runtime(
            services(store, events, http, tmp_path, limits), blocks.registry(), store=store
        )
        await tg.start(runtime.run)
        yield Engine(runtime, store, events, blocks)
        with anyio.fail_after(LIMIT_S):
            await runtime.shutdown(grace_s)
        tg.cancel_scope.cancel()


async def abandoned_run(store: MemoryStore, workflow_id: UUID) -> tuple[Run, MemoryWriter]:
    """A started run whose process died (its lease lapsed), and a writer to give it state."""
    run, _ = await store.insert_run(
        run_id=uuid4(),
        workflow_id=workflow_id,
        trigger_type="manual",
        trigger_payload={},
        lease_owner=uuid4(),
        lease_s=-1,
    )
    writer = MemoryWriter(store)
    writer.run_started(run.id, run.created_at)
    return run, writer


def n(node_id: str, type: str = "count", **params: Any) -> dict[str, Any]:
    return {"id": node_id, "type": type, "params": params}


def e(source: str, target: str, port: str | None = None) -> dict[str, Any]:
    return {"id": f"{source}-{target}", "from": source, "to": target, "port": port}


async def test_a_chain_runs_in_order_with_contiguous_events(tmp_path: Path) -> None:
    async with engine(tmp_path) as eng:
        wf = await eng.workflow([n("a"), n("b"), n("c")], [e("a", "b"), e("b", "c")])
        run_id = await eng.start(wf)
        sub = eng.events.subscribe_run(run_id, wf)
        run = await eng.finished(run_id)
        assert run.status is RunStatus.SUCCEEDED
        assert run.outputs == {"a": {"calls": 1}, "b": {"calls": 1}, "c": {"calls": 1}}
        seen = []
        with sub, anyio.fail_after(LIMIT_S):
            while (event := await sub.receive()) is not None:
                seen.append(event)
                if event.type == "run.finished":
                    break
        # Live subscribers and the durable log both hold every event once, in order
        logged = eng.store.events[run_id]
        assert [ev.to_json() for ev in seen] == logged
        assert [ev["seq"] for ev in logged] == list(range(1, len(logged) + 1))
        succeeded = [ev["node_id"] for ev in logged if ev["type"] == "node.succeeded"]
        assert succeeded == ["a", "b", "c"]
        assert logged[-1]["seq"] == run.event_seq == (await eng.store.get_run(run_id)).event_seq


async def test_a_failure_cancels_running_siblings_and_skips_what_never_started(
    tmp_path: Path,
) -> None:
    async with engine(tmp_path) as eng:
        wf = await eng.workflow(
            [n("start"), n("slow", "gate", name="slow"), n("bad", "boom"), n("after")],
            [e("start", "slow"), e("start", "bad"), e("slow", "after")],
        )
        run_id = await eng.start(wf)
        run = await eng.finished(run_id)
        assert run.status is RunStatus.FAILED
        assert run.error is not None
        assert (run.error["node_id"], run.error["message"]) == ("bad", "boom")
        assert await eng.nodes(run_id) == {
            "start": NodeStatus.SUCCEEDED,
            "slow": NodeStatus.CANCELLED,
            "bad": NodeStatus.FAILED,
            "after": NodeStatus.SKIPPED,
        }
        assert run.outputs == {"start": {"calls": 1}}


async def test_cancelling_a_running_run_cancels_its_nodes(tmp_path: Path) -> None:
    async with engine(tmp_path) as eng:
        wf = await eng.workflow(
            [n("start"), n("wait", "gate", name="w"), n("after")],
            [e("start", "wait"), e("wait", "after")],
        )
        run_id = await eng.start(wf)
        with anyio.fail_after(LIMIT_S):
            await eng.blocks.entry("w").wait()
        cancelled = await eng.runtime.runs.cancel(run_id)
        assert cancelled.status is RunStatus.CANCELLED
        assert cancelled.error == {"type": "Cancelled", "message": "the run was cancelled"}
        assert await eng.nodes(run_id) == {
            "start": NodeStatus.SUCCEEDED,
            "wait": NodeStatus.CANCELLED,
            "after": NodeStatus.CANCELLED,
        }
        # idempotent
        assert (await eng.runtime.runs.cancel(run_id)).status is RunStatus.CANCELLED


async def test_untaken_branches_are_skipped_down_to_a_join_of_skipped_parents(
    tmp_path: Path,
) -> None:
    async with engine(tmp_path) as eng:
        wf = await eng.workflow(
            [
                n("start", "start"),
                n("cond", "if", condition="trigger.go"),
                n("yes"),
                n("yes_after"),
                n("no"),
            ],
            [
                e("start", "cond"),
                e("cond", "yes", "true"),
                e("yes", "yes_after"),
                e("cond", "no", "false"),
            ],
        )
        run = await eng.finished(await eng.start(wf, {"go": False}))
        assert run.status is RunStatus.SUCCEEDED
        assert await eng.nodes(run.id) == {
            "start": NodeStatus.SUCCEEDED,
            "cond": NodeStatus.SUCCEEDED,
            "yes": NodeStatus.SKIPPED,
            "yes_after": NodeStatus.SKIPPED,
            "no": NodeStatus.SUCCEEDED,
        }
        assert eng.blocks.calls == {"no": 1}


async def test_retries_until_an_attempt_succeeds_and_logs_each_retry(tmp_path: Path) -> None:
    async with engine(tmp_path) as eng:
        wf = await eng.workflow([n("f", "flaky", failures=2, retries=2, retry_backoff=0)], [])
        run = await eng.finished(await eng.start(wf))
        assert run.status is RunStatus.SUCCEEDED
        assert run.outputs == {"f": {"attempt": 3}}
        [node] = await eng.store.list_node_runs(run.id)
        assert node.attempt == 3
        lines = await eng.store.list_logs(run.id, after=0, limit=100, node_id="f")
        assert [line.message.split(":")[0] for line in lines] == [
            "attempt 1 of 3 failed",
            "attempt 2 of 3 failed",
        ]


async def test_a_node_out_of_retries_fails_the_run(tmp_path: Path) -> None:
    async with engine(tmp_path) as eng:
        wf = await eng.workflow([n("f", "flaky", failures=5, retries=1, retry_backoff=0)], [])
        run = await eng.finished(await eng.start(wf))
        assert run.status is RunStatus.FAILED
        assert run.error is not None
        assert run.error["message"] == "flake 2"
        assert eng.blocks.calls["f"] == 2


async def test_an_attempt_over_its_timeout_fails_the_node(tmp_path: Path) -> None:
    async with engine(tmp_path) as eng:
        wf = await eng.workflow([n("h", "hang", timeout_s=0.05)], [])
        run = await eng.finished(await eng.start(wf))
        assert run.status is RunStatus.FAILED
        assert run.error is not None
        assert run.error["type"] == "NodeTimeoutError"
        assert "timeout of 0.05 s" in run.error["message"]


async def test_a_half_finished_run_resumes_without_running_its_successes_again(
    tmp_path: Path,
) -> None:
    store = MemoryStore()
    async with engine(tmp_path, store) as eng:
        wf = await eng.workflow([n("a"), n("b"), n("c")], [e("a", "b"), e("b", "c")])
    # Given a run that another process left: "a" committed, "b" running, its lease lapsed
    run, writer = await abandoned_run(store, wf)
    writer.node_ended_soon(
        NodeEnd(run.id, "a", NodeStatus.SUCCEEDED, output=RawJson('{"calls": 41}'))
    )
    writer.node_ended_soon(NodeEnd(run.id, "b", NodeStatus.RUNNING))
    # When a runtime starts on the same store, it claims and resumes it
    async with engine(tmp_path, store) as eng:
        resumed = await eng.finished(run.id)
        assert resumed.status is RunStatus.SUCCEEDED
        assert eng.blocks.calls == {"b": 1, "c": 1}
        assert resumed.outputs == {"a": {"calls": 41}, "b": {"calls": 1}, "c": {"calls": 1}}
    # And its log says so too: "b" back to pending before it ran again, nothing about "a"
    log = [(ev["type"], ev.get("node_id")) for ev in store.events[run.id]]
    assert log[:2] == [("node.interrupted", "b"), ("run.started", None)]
    assert ("node.started", "a") not in log
    assert log.index(("node.started", "b")) > 0


async def test_max_concurrency_queues_runs_in_order(tmp_path: Path) -> None:
    async with engine(tmp_path) as eng:
        wf = await eng.workflow([n("g", "gate", name="g")], [], max_concurrency=1)
        first, second = await eng.start(wf), await eng.start(wf)
        with anyio.fail_after(LIMIT_S):
            await eng.blocks.entry("g").wait()
        assert (await eng.store.get_run(first)).status is RunStatus.RUNNING
        assert (await eng.store.get_run(second)).status is RunStatus.PENDING
        # The second waits in the store, unclaimed, until the first has ended
        assert eng.store.leases[second].owner is None
        assert eng.runtime.statistics().runs_in_flight == 1
        eng.blocks.gate("g").set()
        assert (await eng.finished(first)).status is RunStatus.SUCCEEDED
        assert (await eng.finished(second)).status is RunStatus.SUCCEEDED
        assert eng.blocks.calls["g"] == 2


async def test_a_drain_lets_running_nodes_finish_and_starts_nothing_new(tmp_path: Path) -> None:
    store = MemoryStore()
    async with engine(tmp_path, store, grace_s=LIMIT_S) as eng:
        wf = await eng.workflow([n("g", "gate", name="g"), n("after")], [e("g", "after")])
        run_id = await eng.start(wf)
        with anyio.fail_after(LIMIT_S):
            await eng.blocks.entry("g").wait()
        async with anyio.create_task_group() as tg:
            tg.start_soon(eng.runtime.shutdown, LIMIT_S)
            eng.blocks.gate("g").set()
    # The gate finished within the grace; its child was left for the next start
    assert await eng.nodes(run_id) == {"g": NodeStatus.SUCCEEDED, "after": NodeStatus.PENDING}
    assert (await store.get_run(run_id)).status is RunStatus.RUNNING
    assert eng.blocks.calls == {"g": 1}
    assert store.leases[run_id].owner is None  # released: the next start resumes it


async def test_after_the_grace_running_nodes_are_interrupted_back_to_pending(
    tmp_path: Path,
) -> None:
    store = MemoryStore()
    async with engine(tmp_path, store, grace_s=0.0) as eng:
        wf = await eng.workflow([n("start"), n("g", "gate", name="g")], [e("start", "g")])
        run_id = await eng.start(wf)
        with anyio.fail_after(LIMIT_S):
            await eng.blocks.entry("g").wait()
    assert await eng.nodes(run_id) == {"start": NodeStatus.SUCCEEDED, "g": NodeStatus.PENDING}
    run = await store.get_run(run_id)
    assert run.status is RunStatus.RUNNING
    lines = await store.list_logs(run_id, after=0, limit=100)
    assert any("interrupted by a shutdown" in line.message for line in lines)


async def test_exit_durability_writes_nothing_before_the_runs_end(tmp_path: Path) -> None:
    async with engine(tmp_path) as eng:
        wf = await eng.workflow(
            [n("a"), n("g", "gate", name="g"), n("b")],
            [e("a", "g"), e("g", "b")],
            durability=Durability.EXIT,
        )
        run_id = await eng.start(wf)
        with anyio.fail_after(LIMIT_S):
            await eng.blocks.entry("g").wait()
        # "a" has succeeded and "g" runs, but none of it is stored yet
        assert set((await eng.nodes(run_id)).values()) == {NodeStatus.PENDING}
        assert (await eng.store.get_run(run_id)).status is RunStatus.PENDING
        assert run_id not in eng.store.events
        eng.blocks.gate("g").set()
        run = await eng.finished(run_id)
        assert run.status is RunStatus.SUCCEEDED
        assert set((await eng.nodes(run_id)).values()) == {NodeStatus.SUCCEEDED}
        logged = eng.store.events[run_id]
        assert [ev["seq"] for ev in logged] == list(range(1, len(logged) + 1))
        assert logged[-1]["type"] == "run.finished"


async def test_async_durability_starts_children_before_the_commit(tmp_path: Path) -> None:
    async with engine(tmp_path) as eng:
        chain = [n("a"), n("b"), n("c")]
        sync_wf = await eng.workflow(chain, [e("a", "b"), e("b", "c")])
        async_wf = await eng.workflow(
            chain, [e("a", "b"), e("b", "c")], durability=Durability.ASYNC
        )
        writer = eng.runtime.services.writer
        assert isinstance(writer, MemoryWriter)
        before = writer.commits
        await eng.finished(await eng.start(sync_wf))
        sync_commits = writer.commits - before
        before = writer.commits
        run = await eng.finished(await eng.start(async_wf))
        # One commit for the whole run (its end), against one per node with children
        assert run.status is RunStatus.SUCCEEDED
        assert writer.commits - before == 1
        assert sync_commits == 3


async def test_a_node_reads_any_ancestor_and_stores_only_its_own_input(tmp_path: Path) -> None:
    async with engine(tmp_path) as eng:
        wf = await eng.workflow(
            [
                n("start", "start"),
                n("a"),
                n("b"),
                n(
                    "t",
                    "transform",
                    template='{"first": {{ nodes.start.data.x }}, '
                    '"mid": {{ nodes.a.calls }}, "parent": {{ upstream.b.calls }}}',
                ),
                n("late", "if", condition="nodes.t.result.first == 7"),
            ],
            [e("start", "a"), e("a", "b"), e("b", "t"), e("t", "late")],
        )
        run = await eng.finished(await eng.start(wf, {"x": 7}))
        assert run.status is RunStatus.SUCCEEDED, run.error
        assert run.outputs["t"] == {"result": {"first": 7, "mid": 1, "parent": 1}}
        assert run.outputs["late"]["port"] == "true"
        stored = {r.node_id: r for r in await eng.store.list_node_runs(run.id)}
        # `nodes` is resolved when read, never copied into the stored input.
        assert set(stored["t"].input) == {"params", "upstream", "trigger"}
        assert set(stored["t"].input["upstream"]) == {"b"}


# -- on_error ----------------------------------------------------------------------------------


async def test_on_error_continue_records_the_failure_and_runs_its_children(
    tmp_path: Path,
) -> None:
    async with engine(tmp_path) as eng:
        wf = await eng.workflow(
            [
                n("start", "start"),
                n("bad", "boom", on_error="continue"),
                n("after", "transform", template="{{ upstream.bad.error.message }}"),
                n("side"),
            ],
            [e("start", "bad"), e("bad", "after"), e("start", "side")],
        )
        run = await eng.finished(await eng.start(wf))
        assert run.status is RunStatus.SUCCEEDED
        assert run.error is None
        assert await eng.nodes(run.id) == {
            "start": NodeStatus.SUCCEEDED,
            "bad": NodeStatus.FAILED,
            "after": NodeStatus.SUCCEEDED,
            "side": NodeStatus.SUCCEEDED,
        }
        error = {"type": "RuntimeError", "message": "boom"}
        assert run.outputs["bad"] == {"error": error}
        assert run.outputs["after"] == {"result": "boom"}
        stored = {r.node_id: r for r in await eng.store.list_node_runs(run.id)}
        assert stored["bad"].error == error
        assert stored["bad"].output == {"error": error}
        failed = [ev for ev in eng.store.events[run.id] if ev["type"] == "node.failed"]
        assert failed == [failed[0] | {"node_id": "bad", "error": error, "handled": "continue"}]


@pytest.mark.parametrize("fails", [True, False])
async def test_on_error_branch_takes_the_error_port_only_when_the_node_fails(
    tmp_path: Path, fails: bool
) -> None:
    async with engine(tmp_path) as eng:
        wf = await eng.workflow(
            [
                n("start", "start"),
                n("try", "flaky", failures=1 if fails else 0, on_error="branch"),
                n("handler"),
                n("then"),
                n("join"),
            ],
            [
                e("start", "try"),
                e("try", "handler", "error"),
                e("try", "then"),
                e("handler", "join"),
                e("then", "join"),
            ],
        )
        run = await eng.finished(await eng.start(wf))
        assert run.status is RunStatus.SUCCEEDED
        taken, untaken = ("handler", "then") if fails else ("then", "handler")
        statuses = await eng.nodes(run.id)
        assert statuses["try"] is (NodeStatus.FAILED if fails else NodeStatus.SUCCEEDED)
        assert statuses[taken] is NodeStatus.SUCCEEDED
        assert statuses[untaken] is NodeStatus.SKIPPED
        assert statuses["join"] is NodeStatus.SUCCEEDED


async def test_an_unhandled_failure_still_fails_the_run_beside_a_handled_one(
    tmp_path: Path,
) -> None:
    async with engine(tmp_path) as eng:
        wf = await eng.workflow(
            [n("start", "start"), n("ok", "boom", on_error="continue"), n("bad", "boom")],
            [e("start", "ok"), e("ok", "bad")],
        )
        run = await eng.finished(await eng.start(wf))
        assert run.status is RunStatus.FAILED
        assert run.error is not None
        assert run.error["node_id"] == "bad"


async def test_a_resumed_run_keeps_a_handled_failure(tmp_path: Path) -> None:
    store = MemoryStore()
    async with engine(tmp_path, store) as eng:
        wf = await eng.workflow([n("a", "boom", on_error="continue"), n("b")], [e("a", "b")])
    run, writer = await abandoned_run(store, wf)
    error = '{"error": {"type": "RuntimeError", "message": "earlier"}}'
    writer.node_ended_soon(
        NodeEnd(run.id, "a", NodeStatus.FAILED, output=RawJson(error), error={"type": "x"})
    )
    async with engine(tmp_path, store) as eng:
        resumed = await eng.finished(run.id)
        assert resumed.status is RunStatus.SUCCEEDED
        assert eng.blocks.calls == {"b": 1}
        assert resumed.outputs["a"] == {"error": {"type": "RuntimeError", "message": "earlier"}}


# -- for_each ----------------------------------------------------------------------------------


async def test_for_each_runs_the_block_per_item_in_order_within_its_concurrency(
    tmp_path: Path,
) -> None:
    async with engine(tmp_path) as eng:
        wf = await eng.workflow(
            [
                n("start", "start"),
                n(
                    "each",
                    "echo",
                    value="{{ item.name }}-{{ index }}",
                    for_each="{{ upstream.start.data.people }}",
                    concurrency=3,
                ),
                n("after", "transform", template="{{ upstream.each.count }}"),
            ],
            [e("start", "each"), e("each", "after")],
        )
        people = [{"name": f"p{i}"} for i in range(10)]
        run = await eng.finished(await eng.start(wf, {"people": people}))
        assert run.status is RunStatus.SUCCEEDED, run.error
        assert run.outputs["each"] == {
            "items": [{"value": f"p{i}-{i}", "index": i} for i in range(10)],
            "count": 10,
        }
        assert run.outputs["after"] == {"result": 10}
        assert eng.blocks.most_in_flight == 3
        # Each item is recorded and told as it finishes; the node shows k/n
        items = [ev for ev in eng.store.events[run.id] if ev["type"] == "node.item"]
        assert sorted(ev["index"] for ev in items) == list(range(10))
        assert [ev["done"] for ev in items] == list(range(1, 11))
        assert {ev["total"] for ev in items} == {10}
        (node,) = [r for r in await eng.store.list_node_runs(run.id) if r.node_id == "each"]
        assert node.items == (10, 10)
        assert node.input["for_each"] == people


async def test_a_failed_item_fails_the_node_unless_on_error_handles_it(tmp_path: Path) -> None:
    async with engine(tmp_path) as eng:
        values = ["a", "bad", "c"]
        failing = await eng.workflow(
            [n("each", "echo", value="{{ item }}", for_each=values, concurrency=1)], []
        )
        run = await eng.finished(await eng.start(failing))
        assert run.status is RunStatus.FAILED
        assert run.error == {
            "type": "ValueError",
            "message": "item 1: bad item",
            "item": 1,
            "node_id": "each",
        }
        assert eng.blocks.calls["each:c"] == 0  # fail-fast: nothing after the failure starts
        handled = await eng.workflow(
            [n("each", "echo", value="{{ item }}", for_each=values, on_error="continue")], []
        )
        run = await eng.finished(await eng.start(handled))
        assert run.status is RunStatus.SUCCEEDED
        assert run.outputs["each"]["items"][1] == {
            "error": {"type": "ValueError", "message": "bad item", "item": 1}
        }
        assert run.outputs["each"]["items"][2] == {"value": "c", "index": 2}


@pytest.mark.parametrize(
    ("for_each", "message"),
    [
        ("{{ trigger.n }}", "params.for_each gave int 3, not a list"),
        ("{{ trigger.many }}", "params.for_each gave 6 items; a node runs at most 5"),
        ("{{ trigger.nope }}", "params.for_each: 'nope' is undefined here"),
    ],
)
async def test_a_for_each_that_is_no_list_it_may_run_fails_the_node_clearly(
    tmp_path: Path, for_each: str, message: str
) -> None:
    async with engine(tmp_path, max_items=5) as eng:
        wf = await eng.workflow([n("each", "echo", value=1, for_each=for_each)], [])
        run = await eng.finished(await eng.start(wf, {"n": 3, "many": list(range(6))}))
        assert run.status is RunStatus.FAILED
        assert run.error is not None
        assert message in run.error["message"]


async def test_a_resumed_for_each_runs_only_the_items_that_had_not_finished(
    tmp_path: Path,
) -> None:
    store = MemoryStore()
    async with engine(tmp_path, store) as eng:
        wf = await eng.workflow(
            [n("each", "echo", value="{{ item }}", for_each=["a", "b", "c", "d"])], []
        )
    # Given a run that another process left with items 0 and 2 committed, the node running
    run, writer = await abandoned_run(store, wf)
    writer.node_ended_soon(NodeEnd(run.id, "each", NodeStatus.RUNNING))
    for index in (0, 2):
        writer.item_ended(
            ItemEnd(run.id, "each", index, RawJson(f'{{"earlier": {index}}}'), None, run.created_at)
        )
    # When it is resumed, only items 1 and 3 run; the earlier outputs stand
    async with engine(tmp_path, store) as eng:
        resumed = await eng.finished(run.id)
        assert resumed.status is RunStatus.SUCCEEDED
        assert eng.blocks.calls == {"each:b": 1, "each:d": 1}
        assert resumed.outputs["each"]["items"] == [
            {"earlier": 0},
            {"value": "b", "index": 1},
            {"earlier": 2},
            {"value": "d", "index": 3},
        ]


# -- workflow.run ------------------------------------------------------------------------------


async def test_workflow_run_starts_a_child_and_outputs_its_result(tmp_path: Path) -> None:
    async with engine(tmp_path) as eng:
        child = await eng.workflow(
            [n("start", "start"), n("double", "transform", template="{{ trigger.x * 2 }}")],
            [e("start", "double")],
        )
        parent = await eng.workflow(
            [n("call", "workflow.run", workflow_id=str(child), input={"x": "{{ trigger.x }}"})],
            [],
        )
        run = await eng.finished(await eng.start(parent, {"x": 21}))
        assert run.status is RunStatus.SUCCEEDED, run.error
        out = run.outputs["call"]
        assert out["status"] == "succeeded"
        assert out["outputs"]["double"] == {"result": 42}
        child_run = await eng.store.get_run(UUID(out["run_id"]))
        assert child_run.trigger_type == "workflow"
        assert child_run.trigger_payload == {"x": 21}
        assert child_run.lineage.parent_run_id == run.id
        assert child_run.lineage.depth == 1


async def test_a_failed_child_fails_the_node_with_its_error(tmp_path: Path) -> None:
    async with engine(tmp_path) as eng:
        child = await eng.workflow([n("bad", "boom")], [])
        parent = await eng.workflow([n("call", "workflow.run", workflow_id=str(child))], [])
        run = await eng.finished(await eng.start(parent))
        assert run.status is RunStatus.FAILED
        assert run.error is not None
        assert run.error["type"] == "ChildRunFailedError"
        assert "failed: RuntimeError: boom" in run.error["message"]


async def test_a_workflow_that_runs_itself_stops_at_the_max_depth(tmp_path: Path) -> None:
    async with engine(tmp_path) as eng:
        wf = await eng.workflow([n("again", "count")], [])
        graph = Graph.model_validate(
            {"nodes": [n("again", "workflow.run", workflow_id=str(wf))], "edges": []}
        )
        await eng.runtime.workflows.update(
            wf, name="t", graph=graph, webhook_slug=None, webhook_secret=None, keep_secret=True
        )
        run = await eng.finished(await eng.start(wf))
        assert run.status is RunStatus.FAILED
        # Each level's node fails with its child; the deepest says why.
        chain = [run]
        runs = list(eng.store.runs.values())
        while children := [r for r in runs if r.lineage.parent_run_id == chain[-1].id]:
            chain.append(children[0])
        assert [r.lineage.depth for r in chain] == [0, 1, 2, 3, 4, 5]
        assert chain[-1].error is not None
        assert chain[-1].error["type"] == "NestingTooDeepError"
        assert "WEFT_MAX_DEPTH" in chain[-1].error["message"]


async def test_cancelling_a_parent_cancels_its_child(tmp_path: Path) -> None:
    async with engine(tmp_path) as eng:
        child = await eng.workflow([n("wait", "gate", name="child")], [])
        parent = await eng.workflow([n("call", "workflow.run", workflow_id=str(child))], [])
        run_id = await eng.start(parent)
        with anyio.fail_after(LIMIT_S):
            await eng.blocks.entry("child").wait()
        (child_run,) = [r for r in eng.store.runs.values() if r.workflow_id == child]
        cancelled = await eng.runtime.runs.cancel(run_id)
        assert cancelled.status is RunStatus.CANCELLED
        ended = await eng.finished(child_run.id)
        assert ended.status is RunStatus.CANCELLED


async def test_a_resumed_parent_waits_for_the_child_it_started(tmp_path: Path) -> None:
    store = MemoryStore()
    async with engine(tmp_path, store) as eng:
        child_wf = await eng.workflow([n("c")], [])
        parent_wf = await eng.workflow([n("call", "workflow.run", workflow_id=str(child_wf))], [])
    # Given a parent left by a dead process while its child (started, keyed) ran
    parent, _ = await store.insert_run(
        run_id=uuid4(), workflow_id=parent_wf, trigger_type="manual", trigger_payload={},
        lease_owner=uuid4(), lease_s=-1,
    )  # fmt: skip
    child, _ = await store.insert_run(
        run_id=uuid4(), workflow_id=child_wf, trigger_type="workflow", trigger_payload={},
        lease_owner=uuid4(), lease_s=-1, idempotency_key=f"weft-child:{parent.id}:call#1",
        lineage=Lineage(parent_run_id=parent.id, depth=1),
    )  # fmt: skip
    writer = MemoryWriter(store)
    writer.run_started(parent.id, parent.created_at)
    writer.node_ended_soon(NodeEnd(parent.id, "call", NodeStatus.RUNNING))
    # When both are resumed, the parent's node waits for that child; no second one starts
    async with engine(tmp_path, store) as eng:
        resumed = await eng.finished(parent.id)
        assert resumed.status is RunStatus.SUCCEEDED, resumed.error
        assert resumed.outputs["call"]["run_id"] == str(child.id)
        children = [r for r in store.runs.values() if r.workflow_id == child_wf]
        assert [r.id for r in children] == [child.id]
        assert eng.blocks.calls["c"] == 1
