"""The Writer's batch folding: each row is touched once per statement."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

from runner.models import LogRecord
from runner.store.db import RawJson
from runner.store.writer import NodeEnd, NodeStart, RunEnd, _Batch

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_a_node_start_is_folded_into_its_end_in_the_same_batch() -> None:
    run = uuid4()
    batch = _Batch()
    batch.node_starts[(run, "a")] = NodeStart(run, "a", T0, RawJson("{}"), 1)
    batch.node_starts[(run, "b")] = NodeStart(run, "b", T0, RawJson("{}"), 1)
    batch.node_ends[(run, "a")] = NodeEnd(run, "a", "succeeded", started_at=T0, finished_at=T0)

    params = batch.parameters()

    assert params[3] == ["b"]  # only b's start is written as a start
    assert params[8] == ["a"]  # a is written once, as its end
    assert not batch.only_node_ends()


def test_only_node_ends_once_starts_are_folded() -> None:
    run = uuid4()
    batch = _Batch()
    batch.node_starts[(run, "a")] = NodeStart(run, "a", T0, None, 1)
    batch.node_ends[(run, "a")] = NodeEnd(run, "a", "succeeded", finished_at=T0)
    assert batch.only_node_ends()
    batch.logs.append(LogRecord(run, "a", T0, "info", "hi", None))
    assert not batch.only_node_ends()


def test_a_run_start_is_folded_into_its_end() -> None:
    started, other = uuid4(), uuid4()
    batch = _Batch()
    batch.run_starts[started] = T0
    batch.run_starts[other] = T0
    batch.run_ends[started] = RunEnd(started, "succeeded", {}, None, T0 + timedelta(seconds=1), 3)

    params = batch.parameters()

    assert params[0] == [other]  # the other run's start stays a start
    assert params[22] == [started]
    assert params[28] == [T0]  # the ended run carries its start time


def test_parameters_are_aligned_arrays() -> None:
    run = uuid4()
    batch = _Batch()
    batch.node_ends[(run, "a")] = NodeEnd(run, "a", "failed", error={"type": "X", "message": "m"})
    batch.logs += [LogRecord(run, None, T0, "info", f"line {i}", None) for i in range(3)]
    params = batch.parameters()
    assert len(params) == 29
    assert len({len(p) for p in params[7:16]}) == 1  # node ends
    assert len({len(p) for p in params[16:22]}) == 1  # logs
    assert params[20] == ["line 0", "line 1", "line 2"]
    assert len(batch) == 4
