"""Schemathesis against a live weft: every operation of /openapi.json is fuzzed, and every
response must be no server error and must match what the spec documents (status code,
content type, headers, body schema).

The `weft` server runs in the test's event loop while schemathesis (requests + Hypothesis) is
synchronous, so the fuzzing runs in a worker thread (`anyio.to_thread.run_sync`) and the
server keeps serving meanwhile. Generation is bounded (a fixed number of examples per
operation), derandomized (the same cases every run), and never shrinks: a failing case is
recorded and the search goes on, so one run lists every distinct failure.

Every defect it found once is pinned by its own reproduction in REGRESSIONS
(`test_regression[...]`), so that it stays fixed whatever cases the fuzzer draws next time.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.errors import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support import WeftServer

pytestmark = pytest.mark.anyio

CHECKS: list[Callable[..., Any]] = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
POSITIVE_EXAMPLES = 20  # per operation: data that fits the spec
NEGATIVE_EXAMPLES = 10  # per operation with a query or a body: data that does not
REQUEST_TIMEOUT_S = 5.0  # a stream that never ends (SSE) shows up as a ReadTimeout finding
# weft documents 17 operations today (tests/integration/test_api_docs.py keeps the list);
# fewer means the schema did not load as expected, not that there is less to test.
MIN_OPERATIONS = 17

# start → transform → gcs.write: a run that succeeds at once and stores an artifact.
SEED_GRAPH: dict[str, Any] = {
    "nodes": [
        {"id": "start", "type": "start"},
        {"id": "shape", "type": "transform", "params": {"template": '{"n": 1}'}},
        {"id": "save", "type": "gcs.write", "params": {"path": "st/n.json", "as_json": True}},
    ],
    "edges": [
        {"id": "e1", "from": "start", "to": "shape"},
        {"id": "e2", "from": "shape", "to": "save"},
    ],
}

BIG = 2**63  # one past PostgreSQL's bigint


@dataclass(frozen=True)
class Regression:
    """A request that once broke the spec: {workflow_id}, {run_id}, {artifact_id} and {slug}
    in the URL are the seeded ones."""

    id: str
    operation: str
    url: str
    kwargs: dict[str, Any] = field(default_factory=dict)


REGRESSIONS = [
    # NUL cannot be stored by PostgreSQL: it was a 500, it is a 422.
    Regression("nul-in-webhook-payload", "POST /hooks/{slug}", "/hooks/{slug}",
               {"json": {"note": "a\x00b"}}),
    Regression("nul-in-workflow-name", "POST /workflows", "/workflows",
               {"json": {"name": "a\x00", "graph": {"nodes": [], "edges": []}}}),
    # Integers past bigint were a 500: the query strings now have maximums (422).
    Regression("workflows-offset-overflow", "GET /workflows", f"/workflows?offset={BIG}"),
    Regression("logs-after-overflow", "GET /runs/{run_id}/logs",
               f"/runs/{{run_id}}/logs?after={BIG}"),
    # Answers that were not documented.
    Regression("artifact-200", "GET /artifacts/{artifact_id}", "/artifacts/{artifact_id}"),
    Regression("delete-204", "DELETE /workflows/{workflow_id}", "/workflows/{workflow_id}"),
    Regression("events-200", "GET /runs/{run_id}/events", "/runs/{run_id}/events"),
    Regression("validate-graph-422", "POST /validate-graph", "/validate-graph",
               {"json": {"nodes": [{"id": "a", "type": "no.such.block"}], "edges": []}}),
    Regression("missing-body-400", "POST /workflows", "/workflows"),
    Regression("malformed-json-400", "POST /workflows/{workflow_id}/run",
               "/workflows/{workflow_id}/run", {"content": b"{"}),
    Regression("invalid-query-422", "GET /runs", "/runs?limit=abc"),
]  # fmt: skip


@dataclass(frozen=True)
class Finding:
    operation: str
    mode: str
    title: str  # the check's failure title, or the transport error
    status: int | None
    error_code: str | None
    curl: str
    message: str
    body: str

    def __str__(self) -> str:
        return (
            f"{self.operation} [{self.mode}] {self.title} (status {self.status})\n"
            f"  {self.curl}\n  {self.message.strip()}\n  body: {self.body}"
        )


class SchemaViolation(AssertionError):
    """schemathesis' FailureGroup re-raised as an Exception: FailureGroup derives from
    BaseExceptionGroup, which anyio's pytest runner handles like KeyboardInterrupt."""


async def seed(weft: WeftServer) -> dict[str, str]:
    """A workflow with one finished run and its artifact: ids that exist, for path params."""
    workflow = await weft.create_workflow(SEED_GRAPH, name="schemathesis seed")
    run = await weft.run(workflow["id"])
    assert run["status"] == "succeeded", run
    nodes = await weft.nodes(run["id"])
    return {
        "workflow_id": workflow["id"],
        "run_id": run["id"],
        "artifact_id": nodes["save"]["output"]["artifact_id"],
        "slug": workflow["webhook_slug"],
    }


async def load_schema(weft: WeftServer) -> Any:
    def load() -> Any:
        # An explicit default Config: no schemathesis.toml found on disk changes the run.
        return schemathesis.openapi.from_url(
            f"{weft.url}/openapi.json", config=schemathesis.Config(), timeout=REQUEST_TIMEOUT_S
        )

    return await anyio.to_thread.run_sync(load)


def _error_code(response: Any) -> str | None:
    try:
        code = response.json()["error"]["code"]
    except Exception:
        return None
    return code if isinstance(code, str) else None


def _method_order(operation: Any) -> int:
    # DELETE goes last so that the seeded workflow is still there for every other operation.
    return ["GET", "POST", "PUT", "DELETE"].index(operation.method.upper())


def fuzz(schema: Any, base_url: str, ids: dict[str, str]) -> tuple[list[Finding], set[str]]:
    """Run every operation's cases (blocking: meant for a worker thread).

    Nothing is excluded. GET /runs/{run_id}/events (SSE) is safe to include: it is only
    called with random ids (404) or the seeded run, which has finished, so its stream ends
    after the snapshot and run.finished.
    """
    findings: dict[tuple[Any, ...], Finding] = {}
    exercised: set[str] = set()
    operations = sorted((result.ok() for result in schema.get_all_operations()), key=_method_order)
    with requests.Session() as session:
        for operation in operations:
            fixed = {name: ids[name] for name in ids if f"{{{name}}}" in operation.path}
            modes = [(schemathesis.GenerationMode.POSITIVE, POSITIVE_EXAMPLES)]
            # With only path parameters (uuids) there is nothing schemathesis can negate
            # (Hypothesis calls it Unsatisfiable): negative data only where a query or a
            # body can carry it.
            if operation.query or operation.body:
                modes.append((schemathesis.GenerationMode.NEGATIVE, NEGATIVE_EXAMPLES))
            for mode, examples in modes:
                _fuzz_operation(
                    operation, mode, examples, fixed, base_url, session, findings, exercised
                )
    return list(findings.values()), exercised


def _fuzz_operation(
    operation: Any,
    mode: schemathesis.GenerationMode,
    examples: int,
    fixed: dict[str, str],
    base_url: str,
    session: requests.Session,
    findings: dict[tuple[Any, ...], Finding],
    exercised: set[str],
) -> None:
    label = operation.label
    # Random ids (mostly 404s) and the seeded ones (the 2xx paths).
    strategies = [operation.as_strategy(generation_mode=mode)]
    if fixed:
        strategies.append(operation.as_strategy(generation_mode=mode, path_parameters=fixed))

    @settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: failures are recorded
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
    @given(case=st.one_of(strategies))
    def run_case(case: Any) -> None:
        try:
            response = case.call(base_url=base_url, session=session, timeout=REQUEST_TIMEOUT_S)
        except requests.RequestException as exc:
            title = type(exc).__name__
            findings.setdefault(
                (label, mode.value, title),
                Finding(
                    label, mode.value, title, None, None,
                    case.as_curl_command(), str(exc), "",
                ),
            )  # fmt: skip
            return
        exercised.add(label)
        try:
            case.validate_response(response, checks=CHECKS)
        except FailureGroup as group:
            status, code = response.status_code, _error_code(response)
            for failure in group.exceptions:
                findings.setdefault(
                    (label, mode.value, failure.title, status, code),
                    Finding(
                        label, mode.value, failure.title, status, code,
                        case.as_curl_command(), failure.message, response.text[:300],
                    ),
                )  # fmt: skip

    run_case()


async def test_every_operation_conforms_to_openapi(weft: WeftServer) -> None:
    ids = await seed(weft)
    schema = await load_schema(weft)
    labels = {result.ok().label for result in schema.get_all_operations()}
    assert len(labels) >= MIN_OPERATIONS, sorted(labels)

    findings, exercised = await anyio.to_thread.run_sync(fuzz, schema, weft.url, ids)

    assert exercised == labels, f"operations never answered: {sorted(labels - exercised)}"
    assert not findings, f"{len(findings)} failure(s):\n\n" + "\n\n".join(str(f) for f in findings)


@pytest.mark.parametrize("regression", REGRESSIONS, ids=[r.id for r in REGRESSIONS])
async def test_regression(weft: WeftServer, regression: Regression) -> None:
    """A request that once broke the spec now passes every check."""
    ids = await seed(weft)
    schema = await load_schema(weft)
    operation = schema.find_operation_by_label(regression.operation)
    assert operation is not None, regression.operation
    response = await weft.client.request(
        operation.method.upper(), regression.url.format(**ids), **regression.kwargs
    )
    path_parameters = {name: ids[name] for name in ids if f"{{{name}}}" in operation.path}
    case = operation.Case(path_parameters=path_parameters)
    try:
        case.validate_response(response, checks=CHECKS)
    except FailureGroup as group:
        raise SchemaViolation(str(group)) from None
    assert response.status_code < 500


SCHEMATHESIS_CONFIG = Path(__file__).with_name("schemathesis.toml")
SUITE_MAX_S = 45  # the run's time budget: fuzzing and stateful testing repeat until spent


async def test_the_whole_schemathesis_suite_passes_every_check(
    weft: WeftServer, tmp_path: Path
) -> None:
    """schemathesis' own runner, as a user would run it: every check, every phase (examples,
    coverage, fuzzing, and the stateful phase, which follows the description's links from a
    created workflow to its runs), a fixed seed, a bounded time."""
    await seed(weft)
    command = [
        str(Path(sys.executable).with_name("st")),
        "--config-file", str(SCHEMATHESIS_CONFIG),
        "run", f"{weft.url}/openapi.json",
        "--checks", "all",
        "--phases", "examples,coverage,fuzzing,stateful",
        "--seed", "1",
        "--max-examples", "10",
        "--workers", "1",
        "--request-timeout", str(REQUEST_TIMEOUT_S),
        "--max-time", str(SUITE_MAX_S),
        "--no-color",
    ]  # fmt: skip
    result = await anyio.run_process(command, cwd=tmp_path, check=False)
    output = result.stdout.decode() + result.stderr.decode()
    assert result.returncode == 0, output[-6000:]
    assert "Stateful" in output, output[-3000:]
