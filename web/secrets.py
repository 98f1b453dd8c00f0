"""Secrets: names and values for `{{ secrets.NAME }}`; a value is never answered."""

from __future__ import annotations

from quart import Blueprint, Response
from quart_schema import document_response, validate_request

from web.context import weft
from web.schemas import ErrorResponse, SecretIn, SecretList, SecretOut, SecretValueIn
from web.views import json_response

blueprint = Blueprint("secrets", __name__)


@blueprint.post("/secrets")
@validate_request(SecretIn)
@document_response(SecretOut, 201)
@document_response(ErrorResponse, 409)
@document_response(ErrorResponse, 422)
@document_response(ErrorResponse, 503)
async def create_secret(data: SecretIn) -> Response:
    """Store a secret, encrypted with WEFT_SECRET_KEY: 201 with its name and times (its
    value is never answered); 409 when the name is taken; 503 without a key."""
    return json_response((await weft().create_secret(data.name, data.value)).to_json(), 201)


@blueprint.get("/secrets")
@document_response(SecretList)
@document_response(ErrorResponse, 503)
async def list_secrets() -> Response:
    """Every secret's name and times, never its value."""
    items = await weft().list_secrets()
    return json_response({"items": [s.to_json() for s in items]})


@blueprint.put("/secrets/<name>")
@validate_request(SecretValueIn)
@document_response(SecretOut)
@document_response(ErrorResponse, 404)
@document_response(ErrorResponse, 422)
@document_response(ErrorResponse, 503)
async def put_secret(name: str, data: SecretValueIn) -> Response:
    """Change a secret's value (runs read the new one within a few seconds)."""
    return json_response((await weft().update_secret(name, data.value)).to_json())


@blueprint.delete("/secrets/<name>")
@document_response(ErrorResponse, 404)
@document_response(ErrorResponse, 503)
async def delete_secret(name: str) -> tuple[str, int]:
    """Delete a secret → 204 (runs that read it fail their node from then on)."""
    await weft().delete_secret(name)
    return "", 204
