"""runner/metrics.py without a server: the pending count's cache and timeout, bounded labels,
and one registry per Metrics."""

from __future__ import annotations

import math
from datetime import timedelta

import anyio
import pytest
from prometheus_client.parser import text_string_to_metric_families

from runner.metrics import PENDING_TIMEOUT_S, Metrics
from web.metrics import route_template

pytestmark = pytest.mark.anyio


def pending_of(text: bytes) -> float:
    families = {f.name: f for f in text_string_to_metric_families(text.decode())}
    return float(families["weft_runs_pending"].samples[0].value)


async def test_the_pending_count_is_read_at_most_once_a_second() -> None:
    calls = 0

    async def count() -> int:
        nonlocal calls
        calls += 1
        return 7

    metrics = Metrics(count_pending=count)
    assert pending_of(await metrics.render()) == 7
    assert pending_of(await metrics.render()) == 7
    assert calls == 1


async def test_a_database_that_does_not_answer_makes_pending_unknown_not_a_failed_scrape() -> None:
    async def hangs() -> int:
        await anyio.sleep_forever()
        raise AssertionError

    async def fails() -> int:
        raise OSError("connection refused")

    with anyio.fail_after(PENDING_TIMEOUT_S + 2):
        assert math.isnan(pending_of(await Metrics(count_pending=hangs).render()))
    assert math.isnan(pending_of(await Metrics(count_pending=fails).render()))


async def test_each_metrics_has_its_own_registry() -> None:
    one, two = Metrics(), Metrics()
    one.node_finished("transform", False, timedelta(milliseconds=3))
    assert b'block_type="transform"' in await one.render()
    assert b'block_type="transform"' not in await two.render()


def test_routes_are_templates() -> None:
    assert route_template("/runs/<uuid:run_id>") == "/runs/{run_id}"
    assert route_template("/hooks/<slug>") == "/hooks/{slug}"
    assert route_template("/workflows/<uuid:workflow_id>/nodes/<node_id>/test") == (
        "/workflows/{workflow_id}/nodes/{node_id}/test"
    )
