"""The pure standard blocks called directly, and the block registry."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID, uuid4

import anyio
import httpx
import pytest
from jinja2.exceptions import UndefinedError
from pydantic import BaseModel

from blocks.context import BlockSettings, RunContext, StoredArtifact
from blocks.flow import DelayParams, IfParams
from blocks.registry import Block, BlockRegistry, DuplicateBlockError, block
from blocks.standard import standard_registry

STANDARD_TYPES = {
    "start", "http.request", "gcs.write", "llm.simple", "transform", "if", "delay",
    "workflow.run", "respond",
}  # fmt: skip


class RecordingLog:
    """A NodeLogger that keeps its records."""

    def __init__(self) -> None:
        self.records: list[tuple[str, str, dict[str, Any]]] = []

    def debug(self, message: str, **data: Any) -> None:
        self.records.append(("debug", message, data))

    def info(self, message: str, **data: Any) -> None:
        self.records.append(("info", message, data))

    def warning(self, message: str, **data: Any) -> None:
        self.records.append(("warning", message, data))

    def error(self, message: str, **data: Any) -> None:
        self.records.append(("error", message, data))


class MemoryArtifacts:
    """An ArtifactStore keeping artifacts in memory."""

    def __init__(self) -> None:
        self.stored: dict[str, bytes] = {}

    async def put(
        self, *, run_id: UUID, node_id: str, path: str, data: bytes, content_type: str
    ) -> StoredArtifact:
        self.stored[path] = data
        return StoredArtifact(uuid4(), f"memory://{run_id}/{path}", len(data), content_type)


class Harness:
    """Calls a registered block as the runner does: validated params, node input, context."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http
        self.registry = standard_registry()
        self.log = RecordingLog()
        self.artifacts = MemoryArtifacts()

    async def call(
        self,
        type_name: str,
        params: dict[str, Any],
        *,
        trigger: Any = None,
        upstream: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        b = self.registry.get(type_name)
        assert b is not None
        validated = b.params_model.model_validate(params)
        ctx = RunContext(
            run_id=uuid4(),
            workflow_id=uuid4(),
            node_id="node-1",
            attempt=1,
            timeout_s=30.0,
            params=validated,
            http=self.http,
            artifacts=self.artifacts,
            log=self.log,
            settings=BlockSettings(),
        )
        node_input = {
            "params": validated.model_dump(mode="json"),
            "upstream": upstream or {},
            "trigger": trigger,
        }
        return await b.fn(node_input, ctx)


@pytest.fixture
def requests_sent() -> list[httpx.Request]:
    return []


@pytest.fixture
async def harness(requests_sent: list[httpx.Request]) -> AsyncIterator[Harness]:
    def refuse(request: httpx.Request) -> httpx.Response:
        requests_sent.append(request)
        return httpx.Response(599)

    async with httpx.AsyncClient(transport=httpx.MockTransport(refuse)) as client:
        yield Harness(client)
    # The pure blocks never use the network
    assert requests_sent == []


# -- start -------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_start_emits_the_trigger_payload_without_params(harness: Harness) -> None:
    assert await harness.call("start", {}, trigger={"order": 7}) == {"data": {"order": 7}}


@pytest.mark.anyio
@pytest.mark.parametrize("payload", [{"given": True}, [1, 2], "text", 0, False])
async def test_start_prefers_its_payload_param(harness: Harness, payload: Any) -> None:
    result = await harness.call("start", {"payload": payload}, trigger={"order": 7})
    assert result == {"data": payload}
    assert type(result["data"]) is type(payload)


@pytest.mark.anyio
async def test_start_with_null_payload_emits_the_trigger(harness: Harness) -> None:
    assert await harness.call("start", {"payload": None}, trigger=[1]) == {"data": [1]}


# -- transform ---------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_transform_json_rendering_is_parsed(harness: Harness) -> None:
    result = await harness.call(
        "transform",
        {"template": '{"title": {{ upstream.fetch.data.title | tojson }}, "n": {{ trigger.n }}}'},
        trigger={"n": 2},
        upstream={"fetch": {"data": {"title": "He said \"hi\" <b> & 'bye'"}}},
    )
    assert result == {"result": {"title": "He said \"hi\" <b> & 'bye'", "n": 2}}


@pytest.mark.anyio
async def test_transform_text_rendering_is_kept(harness: Harness) -> None:
    result = await harness.call(
        "transform", {"template": "Hello {{ trigger.name }}!"}, trigger={"name": "Ada"}
    )
    assert result == {"result": "Hello Ada!"}


@pytest.mark.anyio
async def test_transform_lone_expression_keeps_the_value(harness: Harness) -> None:
    data = {"rows": [{"id": 1}], "total": 1}
    result = await harness.call(
        "transform", {"template": "{{ upstream.fetch.data }}"}, upstream={"fetch": {"data": data}}
    )
    assert result == {"result": data}


@pytest.mark.anyio
async def test_transform_tojson_of_a_lone_expression_round_trips(harness: Harness) -> None:
    result = await harness.call(
        "transform", {"template": "{{ trigger | tojson }}"}, trigger={"a": [1, "<x>"]}
    )
    assert result == {"result": {"a": [1, "<x>"]}}


@pytest.mark.anyio
async def test_transform_sees_its_params(harness: Harness) -> None:
    result = await harness.call("transform", {"template": "{{ params.template | length }}"})
    assert result == {"result": len("{{ params.template | length }}")}


@pytest.mark.anyio
async def test_transform_missing_key_fails(harness: Harness) -> None:
    with pytest.raises(UndefinedError):
        await harness.call("transform", {"template": "x {{ trigger.missing }}"}, trigger={})


# -- if ----------------------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("condition", "status", "expected"),
    [
        ("upstream.fetch.status == 200", 200, {"port": "true", "value": True}),
        ("upstream.fetch.status == 200", 500, {"port": "false", "value": False}),
        ("{{ upstream.fetch.status >= 400 }}", 503, {"port": "true", "value": True}),
        ("upstream.fetch.status", 0, {"port": "false", "value": 0}),
        ("upstream.fetch.status", 404, {"port": "true", "value": 404}),
    ],
)
async def test_if_takes_the_port_of_its_condition(
    harness: Harness, condition: str, status: int, expected: dict[str, Any]
) -> None:
    result = await harness.call(
        "if", {"condition": condition}, upstream={"fetch": {"status": status}}
    )
    assert result == expected


@pytest.mark.anyio
async def test_if_value_is_the_native_value(harness: Harness) -> None:
    result = await harness.call("if", {"condition": "trigger.rows"}, trigger={"rows": []})
    assert result == {"port": "false", "value": []}


# -- delay -------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_delay_returns_what_it_slept(harness: Harness) -> None:
    result = await harness.call("delay", {"seconds": 0})
    assert result == {"slept": 0.0}
    assert isinstance(result["slept"], float)


@pytest.mark.anyio
async def test_params_as_refuses_another_model(harness: Harness) -> None:
    ctx = RunContext(
        run_id=uuid4(),
        workflow_id=uuid4(),
        node_id="n",
        attempt=1,
        timeout_s=30.0,
        params=DelayParams(seconds=1),
        http=harness.http,
        artifacts=harness.artifacts,
        log=harness.log,
        settings=BlockSettings(),
    )
    assert ctx.params_as(DelayParams).seconds == 1.0
    with pytest.raises(TypeError, match="params are DelayParams, not IfParams"):
        ctx.params_as(IfParams)


# -- the registry ------------------------------------------------------------------------------


class NoParams(BaseModel):
    pass


async def _noop(input: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
    """Does nothing.

    More text that is not the description.
    """
    return {}


def test_register_declares_and_adds_a_block() -> None:
    registry = BlockRegistry()
    declared = registry.register("noop", NoParams, raw_params=["x"], ports=("a", "b"))(_noop)
    assert isinstance(declared, Block)
    assert registry.get("noop") is declared
    assert "noop" in registry
    assert len(registry) == 1
    assert declared.description == "Does nothing."
    assert declared.raw_params == frozenset({"x"})
    assert declared.branching


def test_duplicate_registration_raises() -> None:
    registry = BlockRegistry()
    first = registry.register("noop", NoParams)(_noop)
    with pytest.raises(DuplicateBlockError, match="block type 'noop' is already registered"):
        registry.register("noop", NoParams)(_noop)
    with pytest.raises(DuplicateBlockError, match="'noop'"):
        registry.add(block("noop", NoParams)(_noop))
    assert registry.get("noop") is first
    assert len(registry) == 1


def test_duplicate_standard_block_raises() -> None:
    registry = standard_registry()
    start = registry.get("start")
    assert start is not None
    with pytest.raises(DuplicateBlockError, match="'start'"):
        registry.add(start)


def test_standard_registry_has_exactly_the_standard_types() -> None:
    registry = standard_registry()
    assert len(registry) == 9
    assert {b.type for b in registry} == STANDARD_TYPES
    assert [b.type for b in registry] == sorted(STANDARD_TYPES)
    assert registry.get("nope") is None
    assert "nope" not in registry


def test_standard_registries_are_independent() -> None:
    one, two = standard_registry(), standard_registry()
    one.register("extra", NoParams)(_noop)
    assert "extra" in one
    assert "extra" not in two


def test_only_if_branches() -> None:
    registry = standard_registry()
    branching = {b.type: b.ports for b in registry if b.branching}
    assert branching == {"if": ("true", "false")}
    raw = {b.type: b.raw_params for b in registry if b.raw_params}
    assert raw == {"if": frozenset({"condition"}), "transform": frozenset({"template"})}


@pytest.mark.parametrize("type_name", sorted(STANDARD_TYPES))
def test_params_schema_is_a_json_schema_object(type_name: str) -> None:
    b = standard_registry().get(type_name)
    assert b is not None
    schema = b.params_schema()
    assert schema["type"] == "object"
    assert isinstance(schema["properties"], dict)
    assert schema["properties"]
    assert set(schema.get("required", [])) <= set(schema["properties"])
    assert schema.get("additionalProperties") is False
    assert b.description


@pytest.mark.parametrize(
    ("type_name", "required"),
    [
        ("start", set()),
        ("delay", {"seconds"}),
        ("if", {"condition"}),
        ("transform", {"template"}),
        ("http.request", {"url"}),
        ("gcs.write", {"path"}),
        ("llm.simple", {"prompt"}),
    ],
)
def test_params_schema_lists_the_required_params(type_name: str, required: set[str]) -> None:
    b = standard_registry().get(type_name)
    assert b is not None
    assert set(b.params_schema().get("required", [])) == required


@pytest.mark.anyio
async def test_a_blocking_block_runs_in_a_thread_while_the_loop_goes_on() -> None:
    @block("spin", NoParams, blocking=True)
    def spin(input: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        """Blocks its thread for 0.3 s."""
        time.sleep(0.3)
        ctx.log.info("spun")
        return {"done": True}

    lines: list[str] = []

    class Log:
        def info(self, message: str, **data: Any) -> None:
            lines.append(message)

        debug = warning = error = info

    ctx = RunContext(
        run_id=None, workflow_id=None, node_id="n", attempt=1, timeout_s=5,  # type: ignore[arg-type]
        params=NoParams(), http=None, artifacts=None, log=Log(), settings=BlockSettings(),  # type: ignore[arg-type]
    )  # fmt: skip
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await anyio.sleep(0.01)
            ticks += 1

    async with anyio.create_task_group() as tg:
        tg.start_soon(tick)
        assert await spin.fn({}, ctx) == {"done": True}
        tg.cancel_scope.cancel()
    assert ticks >= 10  # the loop went on while the block's thread slept
    assert lines == ["spun"]
    with pytest.raises(TypeError, match="must be a plain `def`"):
        block("x", NoParams, blocking=True)(spin.fn)
