"""Artifact downloads."""

from __future__ import annotations

from uuid import UUID

from quart import Blueprint, Response
from quart_schema import validate_response

from web.context import weft
from web.schemas import ErrorResponse

blueprint = Blueprint("artifacts", __name__)


@blueprint.get("/artifacts/<uuid:artifact_id>")
@validate_response(ErrorResponse, 404)
async def download_artifact(artifact_id: UUID) -> Response:
    """Download what a gcs.write node stored."""
    artifact, data = await weft().read_artifact(artifact_id)
    filename = artifact.uri.rsplit("/", 1)[-1] or "artifact"
    return Response(
        data,
        status=200,
        content_type=artifact.content_type,
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "X-Weft-Artifact-Uri": artifact.uri,
        },
    )
