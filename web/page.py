"""The run monitor page at `/` and its static files (placeholder until the page lands)."""

from __future__ import annotations

from quart import Blueprint

blueprint = Blueprint("page", __name__)
