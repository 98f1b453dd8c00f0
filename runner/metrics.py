"""This process's metrics, for Prometheus (GET /metrics), in a registry of its own.

Every figure is this process's: what it started, finished, ran, committed and served, and
what it holds now; only `weft_runs_pending` is the database's (the same on every process).
With several worker processes (WEB_CONCURRENCY) each worker counts and serves only its own,
and a scrape of the shared port reaches whichever worker the kernel hands the connection.
prometheus-client's multiprocess mode is not used: it needs a directory prepared by the main
process before any worker starts, and its gauges are files written on every change, where
these are read from the runtime at scrape time at no cost to runs. The registry belongs to
the process's System, never to the module, so several servers in one process count apart.

Label values are bounded by construction: run statuses, trigger types and block types are
weft's own names (a block type is a registered one), routes are templates; never an id, a
slug or a raw path. The per-event paths (a node's end, a commit, a response) cost a dict
lookup and prometheus-client's own observe: label children are looked up once and kept.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta
from typing import get_args

import anyio
import structlog
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from runner.models import Run, RunStatus, TriggerType

log = structlog.get_logger(__name__)

# The Prometheus text format (0.0.4), which every Prometheus reads.
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
# From 1 ms to 5 min: a node is a template render (sub-ms) up to a long HTTP or LLM call.
NODE_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
)  # fmt: skip
# Requests: 1 ms up to a ?wait of 300 s.
HTTP_BUCKETS = NODE_BUCKETS
# A commit is one statement: ~1 ms on a quiet disk, seconds while the database is away.
COMMIT_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
# Rows (states and event batches) per commit: 1 on a chain, thousands in a burst.
BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)
# The pending count is read at most this often, and given this long before it is unknown.
PENDING_TTL_S = 1.0
PENDING_TIMEOUT_S = 1.0


class Metrics:
    """The process's collectors; callers report events, `render` answers a scrape."""

    def __init__(self, *, count_pending: Callable[[], Awaitable[int]] | None = None) -> None:
        # The `_created` series would double the output for nothing Prometheus needs from
        # the text format (a process-wide switch of prometheus-client; weft is its only user).
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry()
        r = self.registry
        ProcessCollector(registry=r)  # process_*: CPU, memory, open files, start time
        self.runs_started = Counter(
            "weft_runs_started", "Runs created by this process.", ["trigger_type"], registry=r
        )
        self.runs_finished = Counter(
            "weft_runs_finished",
            "Runs that ended in this process, by final status.",
            ["status", "trigger_type"],
            registry=r,
        )
        self.runs_pruned = Counter(
            "weft_runs_pruned",
            "Finished runs this process deleted as older than WEFT_RUN_RETENTION_S.",
            registry=r,
        )
        self.node_duration = Histogram(
            "weft_node_duration_seconds",
            "Time a node took to run (its attempts and retries, not its commit).",
            ["block_type", "status"],
            buckets=NODE_BUCKETS,
            registry=r,
        )
        self.writer_batch = Histogram(
            "weft_writer_batch_rows",
            "Rows (states, log lines, event batches) the writer committed in one statement.",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.writer_commit = Histogram(
            "weft_writer_commit_seconds",
            "Time of one group commit of the writer (the statement and its commit).",
            buckets=COMMIT_BUCKETS,
            registry=r,
        )
        self.http_responses = Counter(
            "weft_http_responses",
            "HTTP responses, by route template and status.",
            ["method", "route", "status"],
            registry=r,
        )
        self.http_duration = Histogram(
            "weft_http_request_duration_seconds",
            "Time from a request's arrival to its response's headers, by route template.",
            ["method", "route"],
            buckets=HTTP_BUCKETS,
            registry=r,
        )
        self._state = _State(count_pending)
        r.register(self._state)
        # Children known up front start at 0 (a rate starts from the first scrape).
        for trigger in get_args(TriggerType):
            self.runs_started.labels(trigger)
            for status in (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED):
                self.runs_finished.labels(str(status), trigger)
        self._started: dict[str, Counter] = {}
        self._finished: dict[tuple[RunStatus, str], Counter] = {}
        self._succeeded: dict[str, Histogram] = {}
        self._failed: dict[str, Histogram] = {}
        self._http: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def watch(
        self, *, in_flight: Callable[[], int], subscribers: Callable[[], tuple[int, int]]
    ) -> None:
        """Read at each scrape: runs in flight here, and live subscribers (run, workflow)."""
        self._state.in_flight = in_flight
        self._state.subscribers = subscribers

    # -- events ----------------------------------------------------------------------------

    def run_started(self, trigger_type: str) -> None:
        child = self._started.get(trigger_type)
        if child is None:
            child = self._started[trigger_type] = self.runs_started.labels(trigger_type)
        child.inc()

    def run_finished(self, run: Run) -> None:
        key = (run.status, run.trigger_type)
        child = self._finished.get(key)
        if child is None:
            child = self._finished[key] = self.runs_finished.labels(*map(str, key))
        child.inc()

    def runs_deleted(self, count: int) -> None:
        """`count` old runs went with the run retention."""
        self.runs_pruned.inc(count)

    def node_finished(self, block_type: str, failed: bool, took: timedelta) -> None:
        """A node ran (its attempts, not its commit) for `took`, and succeeded or failed."""
        children = self._failed if failed else self._succeeded
        child = children.get(block_type)
        if child is None:
            status = "failed" if failed else "succeeded"
            child = children[block_type] = self.node_duration.labels(block_type, status)
        child.observe(took.total_seconds())

    def committed(self, rows: int, seconds: float) -> None:
        """The writer committed one batch of `rows` in `seconds`."""
        self.writer_batch.observe(rows)
        self.writer_commit.observe(seconds)

    def request_served(self, method: str, route: str, status: int, seconds: float) -> None:
        """An HTTP response; `route` is a template (the web layer bounds every label)."""
        key = (method, route, status)
        children = self._http.get(key)
        if children is None:
            children = self._http[key] = (
                self.http_responses.labels(method, route, str(status)),
                self.http_duration.labels(method, route),
            )
        children[0].inc()
        children[1].observe(seconds)

    # -- scrapes ---------------------------------------------------------------------------

    async def render(self) -> bytes:
        """Every metric in the Prometheus text format (CONTENT_TYPE)."""
        await self._state.refresh_pending()
        return generate_latest(self.registry)


class _State:
    """The gauges read when scraped: nothing is counted on the way for them."""

    def __init__(self, count_pending: Callable[[], Awaitable[int]] | None) -> None:
        self.in_flight: Callable[[], int] | None = None
        self.subscribers: Callable[[], tuple[int, int]] | None = None
        self._count_pending = count_pending
        self._pending = math.nan
        self._read_at = -math.inf
        self._reading = False

    async def refresh_pending(self) -> None:
        """Count the pending runs, at most once per PENDING_TTL_S (scrapes share the figure);
        NaN when the database does not answer within PENDING_TIMEOUT_S."""
        now = anyio.current_time()
        if self._count_pending is None or self._reading or now - self._read_at < PENDING_TTL_S:
            return
        self._reading = True
        pending = math.nan
        try:
            with anyio.move_on_after(PENDING_TIMEOUT_S):
                pending = float(await self._count_pending())
        except Exception as exc:  # a scrape must answer while the database is away
            log.warning("metrics_pending_unknown", error=repr(exc))
        finally:
            self._reading = False
        self._pending, self._read_at = pending, now

    def describe(self) -> Iterator[Metric]:
        return self._families()

    def collect(self) -> Iterator[Metric]:
        return self._families(read=True)

    def _families(self, read: bool = False) -> Iterator[Metric]:
        in_flight = GaugeMetricFamily("weft_runs_in_flight", "Runs this process executes now.")
        pending = GaugeMetricFamily(
            "weft_runs_pending", "Runs waiting in PostgreSQL to start (all processes')."
        )
        subscribers = GaugeMetricFamily(
            "weft_live_subscribers",
            "Live subscribers here: a run's (websocket or SSE) or a workflow's (websocket).",
            labels=["channel"],
        )
        if read:
            if self.in_flight is not None:
                in_flight.add_metric([], self.in_flight())
            pending.add_metric([], self._pending)
            if self.subscribers is not None:
                runs, workflows = self.subscribers()
                subscribers.add_metric(["run"], runs)
                subscribers.add_metric(["workflow"], workflows)
        yield in_flight
        yield pending
        yield subscribers
