"""The run monitor page at `/` and its static files under `/static/`, from `web/static/`.

The page is plain HTML, CSS and ES modules served by weft itself: no build step, no CDN, so
it works offline. These routes are hidden from /openapi.json; an unknown or escaping path is
a NotFound, which the app answers with the JSON error shape.
"""

from __future__ import annotations

from pathlib import Path

from quart import Blueprint, Response, send_from_directory
from quart_schema import hide

blueprint = Blueprint("page", __name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"


def _revalidate(response: Response) -> Response:
    """Browsers keep the files but ask again (ETag) so a new weft is picked up at once."""
    response.cache_control.no_cache = True
    return response


@blueprint.get("/")
@hide
async def index() -> Response:
    """The run monitor page."""
    return _revalidate(await send_from_directory(STATIC_DIR, "index.html"))


@blueprint.get("/static/<path:filename>")
@hide
async def static_file(filename: str) -> Response:
    """A file of the page (scripts, styles); 404 for anything outside web/static/."""
    return _revalidate(await send_from_directory(STATIC_DIR, filename))
