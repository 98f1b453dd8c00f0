"""The errors weft's runtime raises; the web layer maps each kind to one status and code."""

from __future__ import annotations


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


class ShuttingDownError(WeftError):
    """weft is shutting down and takes no new runs; retry shortly."""

    code = "shutting_down"
