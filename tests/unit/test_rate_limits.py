"""Rate limits' pure parts: Retry-After's rounding, and the GCRA of the in-memory store (the
same algorithm as sql/queries/rate_limits.sql, which tests/integration/test_rate_limits.py
proves over PostgreSQL)."""

from __future__ import annotations

import math
from uuid import UUID, uuid4

import pytest

from runner.errors import RateLimitedError
from runner.models import RateLimit
from runner.store.memory import MemoryStore

pytestmark = pytest.mark.anyio


def retry_after(wait_s: float) -> int:
    return RateLimitedError(wait_s, requests=1, per_s=1).retry_after_s


def test_retry_after_is_whole_seconds_rounded_up_and_at_least_one() -> None:
    assert [retry_after(w) for w in (0.0, 0.001, 1.0, 1.000001, 59.5)] == [1, 1, 1, 2, 60]
    assert retry_after(math.nextafter(3.0, 4.0)) == 4


def test_the_error_says_the_limit_and_the_wait() -> None:
    error = RateLimitedError(11.2, requests=5, per_s=60)
    assert error.code == "rate_limited"
    assert str(error) == "the workflow starts at most 5 runs per 60 s: retry in 12 s"


async def store_with(limit: RateLimit | None) -> tuple[MemoryStore, UUID]:
    store = MemoryStore()
    workflow = await store.create_workflow(
        workflow_id=uuid4(),
        name="w",
        webhook_slug="w",
        webhook_secret=None,
        graph={"nodes": [], "edges": []},
        rate_limit=limit,
    )
    return store, workflow.id


async def test_requests_fit_at_once_after_a_quiet_period_then_one_per_interval() -> None:
    store, workflow_id = await store_with(RateLimit(3, 60.0))
    assert [await store.take_rate_limit(workflow_id, 1) for _ in range(3)] == [None] * 3
    wait = await store.take_rate_limit(workflow_id, 1)
    # The next cell is free one emission interval (60 s / 3) after the first was taken.
    assert wait is not None
    assert 19.0 < wait <= 20.0


async def test_a_batch_takes_its_cells_whole_or_not_at_all() -> None:
    store, workflow_id = await store_with(RateLimit(5, 60.0))
    assert await store.take_rate_limit(workflow_id, 3) is None
    refused = await store.take_rate_limit(workflow_id, 3)
    assert refused is not None
    assert 11.0 < refused <= 12.0  # one more cell frees in 12 s
    assert await store.take_rate_limit(workflow_id, 2) is None
    assert await store.take_rate_limit(workflow_id, 6) == math.inf


async def test_no_limit_takes_nothing() -> None:
    store, workflow_id = await store_with(None)
    assert await store.get_rate_limit(workflow_id) is None
    assert [await store.take_rate_limit(workflow_id, 1000) for _ in range(3)] == [None] * 3
