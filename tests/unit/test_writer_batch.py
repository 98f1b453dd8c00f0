"""The Writer's batch folding: each row is touched once per statement."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import orjson

from runner.live.events import Event, RunFinished, RunProgress
from runner.records import LogRecord
from runner.store import notices
from runner.store.batch import Batch, NodeEndColumns
from runner.store.db import RawJson
from runner.store.event_rows import appended
from runner.store.protocol import NodeEnd, NodeStart, RunEnd
from runner.store.queries import load_queries

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_a_node_start_is_folded_into_its_end_in_the_same_batch() -> None:
    run = uuid4()
    batch = Batch()
    batch.node_starts[(run, "a")] = NodeStart(run, "a", T0, RawJson("{}"), 1)
    batch.node_starts[(run, "b")] = NodeStart(run, "b", T0, RawJson("{}"), 1)
    batch.node_ends[(run, "a")] = NodeEnd(run, "a", "succeeded", started_at=T0, finished_at=T0)

    columns = batch.columns()

    assert columns.node_starts.node_id == ["b"]  # only b's start is written as a start
    assert columns.node_ends.node_id == ["a"]  # a is written once, as its end
    assert not batch.only_node_ends()


def test_only_node_ends_once_starts_are_folded() -> None:
    run = uuid4()
    batch = Batch()
    batch.node_starts[(run, "a")] = NodeStart(run, "a", T0, None, 1)
    batch.node_ends[(run, "a")] = NodeEnd(run, "a", "succeeded", finished_at=T0)
    assert batch.only_node_ends()
    batch.logs.append(LogRecord(run, "a", T0, "info", "hi", None))
    assert not batch.only_node_ends()


def test_a_run_start_is_folded_into_its_end() -> None:
    started, other = uuid4(), uuid4()
    batch = Batch()
    batch.run_starts[started] = T0
    batch.run_starts[other] = T0
    batch.run_ends[started] = RunEnd(started, "succeeded", {}, None, T0 + timedelta(seconds=1), 3)

    columns = batch.columns()

    assert columns.run_starts.run_id == [other]  # the other run's start stays a start
    assert columns.run_ends.run_id == [started]
    assert columns.run_ends.started_at == [T0]  # the ended run carries its start time


def placeholders(statement: str) -> int:
    return len(set(re.findall(r"\$(\d+)", statement)))


def test_the_arguments_are_the_statements_parameters_in_order() -> None:
    run = uuid4()
    batch = Batch()
    batch.node_ends[(run, "a")] = NodeEnd(run, "a", "failed", error={"type": "X", "message": "m"})
    batch.logs += [LogRecord(run, None, T0, "info", f"line {i}", None) for i in range(3)]
    columns = batch.columns()
    queries = load_queries()
    # Every $n of each statement gets exactly one column (or one value), none left over
    assert len(columns.arguments()) == placeholders(queries["write_batch"])
    both = len(columns.node_ends) + len(columns.events)
    assert both == placeholders(queries["write_node_ends"])
    assert len(NodeEndColumns._fields) + len(columns.events) == placeholders(
        queries["write_node_end"]
    )
    # In the order the statement's header lists them: $20 is the log lines' level, $21
    # their message, $10 the node ends' status
    arguments = columns.arguments()
    assert arguments[19] == ["info"] * 3
    assert arguments[20] == ["line 0", "line 1", "line 2"]
    assert arguments[9] == ["failed"]
    assert len(batch) == 4


def test_events_are_one_log_row_per_run_and_wake_ups_under_the_payload_limit() -> None:
    runs = [uuid4() for _ in range(200)]
    workflow = uuid4()
    batch = Batch()
    for run in runs:
        batch.events += [(Event(RunProgress(i, i, 3), run, i), workflow) for i in (4, 5, 6)]
    batch.events.append((Event(RunFinished("succeeded", T0, 1, None), runs[0], 7), workflow))

    events = batch.columns().events
    told = appended(batch.events)

    assert events.run_id == runs
    assert events.first_seq == [4] * 200
    assert events.seq == [7] + [6] * 199
    assert [e["seq"] for e in orjson.loads(events.events[0])] == [4, 5, 6, 7]
    # Every run is told of, in payloads PostgreSQL accepts, the first with its end
    sent = notices.payloads("me", told)
    received = [n for p in sent for n in notices.parse(p)[1]]
    assert all(len(p.encode()) < 8000 for p in sent)
    assert len(sent) > 1
    assert received == told
    assert [n.run_id for n in received if isinstance(n, notices.EventsAppended)] == runs
    assert received[0] == notices.EventsAppended(runs[0], workflow, 4, 7, True)
    assert {notices.parse(p)[0] for p in sent} == {"me"}
