"""Wire types: what the API accepts and answers, validated at the edge."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, RootModel, StringConstraints

from runner.graph.shape import ID_PATTERN, Graph
from runner.models import MAX_NAME_LENGTH

SLUG_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
# A tag: letters, digits, spaces and _ . : / -, starting with a letter or a digit and not
# ending with a space (so that "prod " never differs from "prod" unseen).
TAG_PATTERN = r"^[A-Za-z0-9](?:[A-Za-z0-9 _.:/-]*[A-Za-z0-9_.:/-])?$"
MAX_TAG_LENGTH = 50
MAX_TAGS = 20
MAX_DESCRIPTION_LENGTH = 2000


class ErrorBody(BaseModel):
    code: str
    message: str
    details: list[dict[str, Any]] = Field(default_factory=list)


class ErrorResponse(BaseModel):
    """Every error: {"error": {"code", "message", "details"}}."""

    error: ErrorBody


Tag = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_TAG_LENGTH, pattern=TAG_PATTERN)
]


def _unique(tags: list[str]) -> list[str]:
    return list(dict.fromkeys(tags))


# At most MAX_TAGS as sent (so that the schema's maxItems holds), then deduplicated.
Tags = Annotated[list[Tag], Field(max_length=MAX_TAGS), AfterValidator(_unique)]


class WorkflowRateLimit(BaseModel):
    """At most `requests` runs started per `per_s` seconds by the workflow's webhook and run
    calls (a batch of k counts k), across every process; a call over it is answered 429
    with Retry-After and starts nothing."""

    model_config = ConfigDict(extra="forbid")
    requests: int = Field(ge=1, le=1_000_000, examples=[100])
    per_s: float = Field(gt=0, le=86_400, allow_inf_nan=False, examples=[60])


class WorkflowIn(BaseModel):
    """A workflow as created or overwritten."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=MAX_NAME_LENGTH)
    description: str = Field(
        default="",
        max_length=MAX_DESCRIPTION_LENGTH,
        description="Free text for people; kept when omitted on PUT.",
    )
    tags: Tags = Field(
        default_factory=list,
        description=f"At most {MAX_TAGS} labels to find the workflow by (GET /workflows?tag=); "
        "repeats are dropped, the order is kept; kept when omitted on PUT.",
    )
    webhook_slug: str | None = Field(
        default=None,
        pattern=SLUG_PATTERN,
        description="Path segment of the webhook URL; a random one when omitted.",
    )
    webhook_secret: str | None = Field(
        default=None,
        max_length=500,
        description="Kept when omitted on PUT; send null to clear it.",
    )
    graph: Graph = Field(default_factory=Graph)
    max_concurrency: int | None = Field(
        default=None,
        ge=1,
        le=10_000,
        description="At most this many runs at once; more wait as pending, in order.",
    )
    rate_limit: WorkflowRateLimit | None = Field(
        default=None,
        description="At most `requests` runs started per `per_s` seconds by its webhook and "
        "run calls; null or omitted: no limit (a PUT without it clears it).",
    )
    durability: Literal["sync", "async", "exit"] = Field(
        default="sync",
        description="sync: a node's success is committed before its children start; async: "
        "results are committed in the background, grouped (a crash may re-run the last few "
        "nodes); exit: persisted at the run's end only (a crash re-runs the run).",
    )


class WorkflowOut(BaseModel):
    id: UUID
    name: str
    description: str = ""
    tags: list[str] = Field(default_factory=list)
    max_concurrency: int | None = None
    rate_limit: WorkflowRateLimit | None = None
    durability: str = "sync"
    webhook_slug: str
    webhook_url: str
    has_webhook_secret: bool
    graph: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class WorkflowList(BaseModel):
    items: list[WorkflowOut]
    total: int
    limit: int
    offset: int


class OffsetPage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    limit: int = Field(default=50, ge=1, le=200)
    offset: int = Field(default=0, ge=0, le=1_000_000_000)


class LogsPage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    limit: int = Field(default=500, ge=1, le=5000)
    after: int = Field(
        default=0, ge=0, le=2**63 - 1, description="Cursor: the last log id of a page."
    )
    node_id: str | None = Field(
        default=None, pattern=ID_PATTERN, description="Only this node's lines."
    )


class DuplicateIn(BaseModel):
    """Copies a workflow (save as, or a new workflow from a template)."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_NAME_LENGTH,
        description='The copy\'s name; "<name> (copy)" when omitted.',
    )


class HookBody(RootModel[Any]):
    """A webhook's JSON body, any JSON value: the run's trigger payload (a body that is
    exactly {"payload": X} gives X)."""


class RunIn(BaseModel):
    """Starts a run; `start_input` becomes the trigger payload."""

    model_config = ConfigDict(extra="forbid")
    start_input: Any = None


class SecretIn(BaseModel):
    """A secret: its name (`{{ secrets.NAME }}`) and its value."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$", examples=["API_KEY"])
    value: str = Field(min_length=1, max_length=65_536)


class SecretValueIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    value: str = Field(min_length=1, max_length=65_536)


class SecretOut(BaseModel):
    name: str
    created_at: datetime
    updated_at: datetime


class SecretList(BaseModel):
    items: list[SecretOut]


class ScheduleIn(BaseModel):
    """A schedule: run the workflow on `cron` (5 fields) in `timezone`, with `payload` (plus
    `fired_at`) as its trigger payload."""

    model_config = ConfigDict(extra="forbid")
    cron: str = Field(min_length=1, max_length=200, examples=["0 7 * * 1-5"])
    timezone: str = Field(default="UTC", min_length=1, max_length=100, examples=["Europe/Paris"])
    payload: dict[str, Any] = Field(default_factory=dict)
    enabled: bool = Field(default=True, strict=True)


class ScheduleOut(BaseModel):
    id: UUID
    workflow_id: UUID
    cron: str
    timezone: str
    payload: dict[str, Any]
    enabled: bool
    next_fire_at: datetime | None = Field(description="The next slot; null while disabled.")
    last_fired_at: datetime | None
    created_at: datetime
    updated_at: datetime


class ScheduleList(BaseModel):
    items: list[ScheduleOut]


class RerunIn(BaseModel):
    """Re-runs a finished run: `from` and everything downstream of it run again (without
    it, the run's failed and cancelled nodes and what is downstream of them)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    from_node: str | None = Field(default=None, alias="from", min_length=1, max_length=128)


class NodeTestIn(BaseModel):
    """The data a node is tried on: what its templates see as `upstream`, `trigger` and
    `nodes` (each optional)."""

    model_config = ConfigDict(extra="forbid")
    upstream: dict[str, Any] = Field(default_factory=dict)
    trigger: Any = Field(default_factory=dict)
    nodes: dict[str, Any] = Field(default_factory=dict)


class NodeTestOut(BaseModel):
    status: str = Field(description="succeeded or failed")
    output: Any = None
    error: dict[str, Any] | None = None
    logs: list[dict[str, Any]]
    duration_ms: int


MAX_BATCH_RUNS = 1000


class RunBatchIn(BaseModel):
    """Starts several runs at once; each item is a RunIn."""

    model_config = ConfigDict(extra="forbid")
    runs: list[RunIn] = Field(min_length=1, max_length=MAX_BATCH_RUNS)


class RunSummary(BaseModel):
    id: UUID
    workflow_id: UUID
    status: str
    trigger_type: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    duration_ms: int | None
    duration: str | None = Field(description='Human duration, e.g. "1 min 30 sec".')
    error: dict[str, Any] | None = None
    parent_run_id: UUID | None = Field(
        default=None, description="The run whose workflow.run node started this one."
    )
    rerun_of: UUID | None = Field(default=None, description="The run this one re-runs.")


class RunOut(RunSummary):
    trigger_payload: Any = None
    progress: int = Field(ge=0, le=100)
    outputs: dict[str, Any] | None = Field(
        default=None, description="{node_id: output} of the nodes that succeeded."
    )


class RunList(BaseModel):
    items: list[RunSummary]
    next_before: UUID | None = Field(description="Pass as ?before= for the next page.")


class RunBatchOut(BaseModel):
    items: list[RunOut] = Field(description="The new runs, in the order they were asked for.")


class ItemsOut(BaseModel):
    done: int = Field(description="Items finished (succeeded or failed).")
    total: int


class NodeRunOut(BaseModel):
    node_id: str
    node_type: str
    status: str
    attempt: int
    started_at: datetime | None
    finished_at: datetime | None
    duration_ms: int | None
    input: Any = None
    output: Any = None
    error: dict[str, Any] | None = None
    items: ItemsOut | None = Field(
        default=None, description="A for_each node's progress; null for other nodes."
    )


class NodeRunList(BaseModel):
    run_id: UUID
    items: list[NodeRunOut]


class LogOut(BaseModel):
    id: int
    node_id: str | None
    ts: datetime
    level: str
    message: str
    data: dict[str, Any] | None = None


class LogList(BaseModel):
    run_id: UUID
    items: list[LogOut]
    next_after: int | None = Field(description="Pass as ?after= for the next page.")


class BlockOut(BaseModel):
    type: str
    description: str
    params_schema: dict[str, Any]
    branching: bool
    ports: list[str] | None = None
    blocking: bool = Field(
        default=False, description="Runs in a worker thread (a block that blocks or computes)."
    )


class BlockList(BaseModel):
    items: list[BlockOut]
    node_policy_schema: dict[str, Any] = Field(
        description="Params every node accepts beside its block's own (retries, timeout_s, "
        "on_error, for_each, concurrency), as JSON Schema."
    )


class ValidationOut(BaseModel):
    valid: bool
    order: list[str]


class HealthOut(BaseModel):
    status: str
    database: str
    supervisors: int
    runs_in_flight: int
    pid: int = Field(description="The process that answered (one of WEB_CONCURRENCY workers).")
