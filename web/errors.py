"""Errors as JSON everywhere: {"error": {"code", "message", "details"}} with the right status."""

from __future__ import annotations

from typing import Any

import structlog
from pydantic import ValidationError
from quart import Quart, Response, jsonify, request
from quart_schema import RequestSchemaValidationError
from quart_schema.validation import QuerystringValidationError
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from runner.errors import (
    ConflictError,
    DatabaseError,
    DatabaseUnavailableError,
    InvalidGraphError,
    InvalidRequestError,
    NotFoundError,
    RateLimitedError,
    SecretKeyMissingError,
    ShuttingDownError,
    UnauthorizedError,
    WeftError,
)

log = structlog.get_logger(__name__)


class ApiError(Exception):
    """An error answered as is: status, code, message, details."""

    def __init__(
        self, status: int, code: str, message: str, details: list[dict[str, Any]] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or []


def error_response(
    status: int, code: str, message: str, details: list[dict[str, Any]] | None = None
) -> Response:
    response = jsonify({"error": {"code": code, "message": message, "details": details or []}})
    response.status_code = status
    return response


def validation_details(exc: ValidationError) -> list[dict[str, Any]]:
    details = []
    for error in exc.errors(include_url=False, include_context=False, include_input=False):
        where = ".".join(str(p) for p in error["loc"])
        details.append({"code": error["type"], "field": where, "message": error["msg"]})
    return details


# Each kind of runner error answers with one status; anything else of the kind is a 400.
WEFT_STATUSES: tuple[tuple[type[WeftError], int], ...] = (
    (NotFoundError, 404),
    (ConflictError, 409),
    (UnauthorizedError, 401),
    (InvalidGraphError, 422),
    (InvalidRequestError, 422),
    (RateLimitedError, 429),
    (ShuttingDownError, 503),
    (SecretKeyMissingError, 503),
    (DatabaseUnavailableError, 503),
    (DatabaseError, 500),
)


def _weft_status(exc: WeftError) -> int:
    return next((status for kind, status in WEFT_STATUSES if isinstance(exc, kind)), 400)


def register_error_handlers(app: Quart) -> None:
    """Map every failure to the JSON error shape."""

    @app.errorhandler(ApiError)
    async def api_error(exc: ApiError) -> Response:
        return error_response(exc.status, exc.code, exc.message, exc.details)

    @app.errorhandler(WeftError)
    async def weft_error(exc: WeftError) -> Response:
        if isinstance(exc, InvalidGraphError):
            return error_response(
                _weft_status(exc),
                exc.code,
                f"the graph has {len(exc.problems)} problem(s)",
                [p.to_json() for p in exc.problems],
            )
        if isinstance(exc, InvalidRequestError) and exc.field is not None:
            details = [{"field": exc.field, "message": str(exc)}]
            return error_response(_weft_status(exc), exc.code, str(exc), details)
        if isinstance(exc, RateLimitedError):
            limit = {"requests": exc.requests, "per_s": exc.per_s}
            waits: list[dict[str, Any]] = [
                {"retry_after_s": exc.retry_after_s, "rate_limit": limit}
            ]
            response = error_response(_weft_status(exc), exc.code, str(exc), waits)
            response.headers["Retry-After"] = str(exc.retry_after_s)
            return response
        if isinstance(exc, DatabaseUnavailableError):
            log.warning("database_unavailable", path=request.path, error=repr(exc.__cause__))
            message = "the database is not reachable; retry shortly"
            return error_response(_weft_status(exc), exc.code, message)
        if isinstance(exc, DatabaseError):
            log.error("database_error", path=request.path, error=repr(exc.__cause__))
        return error_response(_weft_status(exc), exc.code, str(exc))

    @app.errorhandler(RequestSchemaValidationError)
    async def invalid_request(exc: RequestSchemaValidationError) -> Response:
        cause = exc.validation_error
        details = validation_details(cause) if isinstance(cause, ValidationError) else []
        if isinstance(exc, QuerystringValidationError):
            return error_response(422, "invalid_request", "the query string is not valid", details)
        if request.method in ("POST", "PUT", "PATCH") and not (await request.get_data()).strip():
            return error_response(400, "missing_body", "the request needs a JSON body")
        if any(d["field"].startswith("graph") for d in details):
            return error_response(422, "invalid_graph", "the graph is malformed", details)
        return error_response(422, "invalid_request", "the request is not valid", details)

    @app.errorhandler(HTTPException)
    async def http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        code = (exc.name or "error").lower().replace(" ", "_")
        response = error_response(status, code, exc.description or exc.name or "error")
        if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
            # RFC 9110: a 405 lists the methods the resource does take.
            response.headers["Allow"] = ", ".join(sorted(exc.valid_methods))
        return response

    @app.errorhandler(Exception)
    async def unexpected(exc: Exception) -> Response:
        log.exception("unhandled_error", path=request.path)
        return error_response(500, "internal_error", "an internal error occurred")
