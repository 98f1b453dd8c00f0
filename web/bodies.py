"""Optional JSON bodies (a run's input, a webhook payload), validated like quart-schema does."""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ValidationError
from quart import request

from web.errors import ApiError, validation_details

M = TypeVar("M", bound=BaseModel)


async def read_model(model: type[M], *, default: M) -> M:
    """The body as `model`; `default` when the body is empty; 422 when it does not fit."""
    data = await request.get_json()
    if data is None:
        return default
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ApiError(
            422, "invalid_request", "the request is not valid", validation_details(exc)
        ) from exc


def read_query(model: type[M]) -> M:
    """The query string as `model`; 422 when it does not fit."""
    try:
        return model.model_validate(request.args.to_dict())
    except ValidationError as exc:
        raise ApiError(
            422, "invalid_request", "the query string is not valid", validation_details(exc)
        ) from exc
