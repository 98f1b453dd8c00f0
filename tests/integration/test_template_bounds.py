"""Templates cannot be turned against the host: what would explode is refused when the graph
is saved (where the template shows it) or fails its node, and the server answers meanwhile."""

from __future__ import annotations

import time
from typing import Any

import anyio
import pytest

from tests.integration.test_bad_input import error_of
from tests.integration.test_runs import chain
from tests.support import WeftServer

pytestmark = pytest.mark.anyio

# What the issue asks of it: the server answers within a second while such graphs are
# validated and run (a ceiling, not a speed claim: refused work is never done).
HEALTH_CEILING_S = 1.0


def transform(template: str) -> dict[str, Any]:
    return chain({"id": "t", "type": "transform", "params": {"template": template}})


@pytest.mark.parametrize(
    ("template", "why"),
    [
        ("{{ 7 ** 20000000 }}", "7 ** 20000000 is too large"),
        ("{{ 'x' * 300000000 }}", "300,000,000 times is over the limit"),
    ],
)
async def test_a_visible_explosion_is_refused_when_saved(
    weft: WeftServer, template: str, why: str
) -> None:
    for path in ("/workflows", "/validate-graph"):
        body = {"name": "boom", "graph": transform(template)}
        response = await weft.client.post(
            path, json=body if path == "/workflows" else body["graph"]
        )
        (detail,) = error_of(response, 422, "invalid_graph")["details"]
        assert (detail["node_id"], detail["field"]) == ("t", "params.template")
        assert why in detail["message"]
        assert "is refused" in detail["message"]


async def test_the_server_answers_while_templates_that_explode_are_saved_and_run(
    weft: WeftServer,
) -> None:
    slowest = 0.0
    done = anyio.Event()

    async def watch_health() -> None:
        nonlocal slowest
        while not done.is_set():
            began = time.perf_counter()
            response = await weft.client.get("/healthz")
            assert response.status_code == 200
            slowest = max(slowest, time.perf_counter() - began)
            await anyio.sleep(0.02)

    templates = [
        "{{ trigger.n ** 20000000 }}",
        "{{ 'x' * trigger.n * 100000000 }}",
        "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}",
        "{% set ns = namespace(s='x') %}{% for i in range(60) %}"
        "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}",
    ]
    async with anyio.create_task_group() as tg:
        tg.start_soon(watch_health)
        # Refused at save time: a graph with every visible explosion at once
        refused = await weft.client.post(
            "/validate-graph", json=transform("{{ 7 ** 20000000 }}{{ 9 ** 90000000 }}")
        )
        assert refused.status_code == 422
        for template in templates:
            workflow = await weft.create_workflow(transform(template))
            run = await weft.run(workflow["id"], {"n": 7})
            assert run["status"] == "failed"
            assert run["error"]["type"] == "TemplateLimitError", run["error"]
        done.set()
    assert slowest < HEALTH_CEILING_S
