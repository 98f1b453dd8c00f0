"""The /docs page's assets, served from the swagger-ui-bundle package: no CDN needed."""

from __future__ import annotations

from quart import Blueprint, Response, send_from_directory
from quart_schema import hide
from swagger_ui_bundle import swagger_ui_path
from werkzeug.exceptions import NotFound

blueprint = Blueprint("docs", __name__)

_ASSETS = frozenset({"swagger-ui-bundle.js", "swagger-ui.css"})


@blueprint.get("/docs/assets/<string:name>")
@hide
async def docs_asset(name: str) -> Response:
    if name not in _ASSETS:
        raise NotFound()
    response = await send_from_directory(swagger_ui_path, name)
    response.cache_control.max_age = 86400
    return response
