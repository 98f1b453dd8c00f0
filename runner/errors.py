"""The errors weft's runtime raises; the web layer maps each kind to one status and code."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


class WeftError(Exception):
    """Something went wrong in weft."""

    code = "error"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())


class NotFoundError(WeftError):
    """Not found."""

    code = "not_found"


class WorkflowNotFoundError(NotFoundError):
    """No such workflow."""

    code = "workflow_not_found"


class RunNotFoundError(NotFoundError):
    """No such run."""

    code = "run_not_found"


class ArtifactNotFoundError(NotFoundError):
    """No such artifact."""

    code = "artifact_not_found"


class NodeNotFoundError(NotFoundError):
    """The workflow has no such node."""

    code = "node_not_found"


class ScheduleNotFoundError(NotFoundError):
    """No such schedule."""

    code = "schedule_not_found"


class SecretNotFoundError(NotFoundError):
    """No such secret."""

    code = "secret_not_found"


class HookNotFoundError(NotFoundError):
    """No workflow has this webhook slug."""

    code = "hook_not_found"


class HookChangedError(WeftError):
    """The webhook changed (or went) since it was looked up; look it up again."""

    code = "hook_changed"


class ConflictError(WeftError):
    """The request conflicts with the current state."""

    code = "conflict"


class SlugTakenError(ConflictError):
    """Another workflow already uses this webhook_slug."""

    code = "webhook_slug_taken"


class WorkflowBusyError(ConflictError):
    """The workflow has runs pending or running; wait for them (or cancel them) first."""

    code = "workflow_busy"


class RunAlreadyFinishedError(ConflictError):
    """The run has already finished."""

    code = "run_finished"


class RunNotFinishedError(ConflictError):
    """The run has not finished yet."""

    code = "run_not_finished"


class NothingToRerunError(ConflictError):
    """The run has no failed or cancelled node to run again; name one with `from`."""

    code = "nothing_to_rerun"


class InvalidRequestError(WeftError):
    """The request is well formed but asks for what cannot be; `field` names what."""

    code = "invalid_request"

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class PluginStartError(WeftError):
    """A block plugin could not be loaded (the message names it)."""

    code = "plugin_error"


class SecretExistsError(ConflictError):
    """A secret of that name exists."""

    code = "secret_exists"


class SecretKeyMissingError(WeftError):
    """WEFT_SECRET_KEY is not set: weft stores and reads no secrets without it."""

    code = "secret_key_missing"

    def __init__(self) -> None:
        super().__init__(
            "WEFT_SECRET_KEY is not set: weft stores and reads no secrets without it (set it "
            "to a Fernet key; `weft up` makes one and keeps it under WEFT_DATA_DIR)"
        )


class RateLimitedError(WeftError):
    """The workflow's rate limit is reached: retry after `retry_after_s` seconds (whole,
    rounded up, at least 1)."""

    code = "rate_limited"

    def __init__(self, wait_s: float, *, requests: int, per_s: float) -> None:
        self.retry_after_s = max(1, math.ceil(wait_s))
        self.requests = requests
        self.per_s = per_s
        super().__init__(
            f"the workflow starts at most {requests} runs per {per_s:g} s: retry in "
            f"{self.retry_after_s} s"
        )


class ShuttingDownError(WeftError):
    """weft is shutting down and takes no new runs; retry shortly."""

    code = "shutting_down"


class DatabaseError(WeftError):
    """The database refused the operation."""

    code = "database_error"


class DatabaseUnavailableError(DatabaseError):
    """The database is not reachable; retry shortly."""

    code = "database_unavailable"


@dataclass(frozen=True, slots=True)
class Problem:
    """One reason a graph is invalid, naming the node or edge concerned."""

    code: str
    message: str
    node_id: str | None = None
    edge_id: str | None = None
    field: str | None = None

    def to_json(self) -> dict[str, Any]:
        fields = {"node_id": self.node_id, "edge_id": self.edge_id, "field": self.field}
        return {
            "code": self.code,
            "message": self.message,
            **{k: v for k, v in fields.items() if v is not None},
        }


class InvalidGraphError(WeftError):
    """The graph is invalid; `problems` lists every reason."""

    code = "invalid_graph"

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(p.message for p in problems))
        self.problems = problems


class UnauthorizedError(WeftError):
    """The request is not authorised."""

    code = "unauthorized"


class SignatureRequiredError(UnauthorizedError):
    """This webhook requires a signature header."""

    code = "signature_required"


class BadSignatureError(UnauthorizedError):
    """The webhook signature does not match the body."""

    code = "bad_signature"
