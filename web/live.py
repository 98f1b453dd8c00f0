"""Live events: websocket channels and Server-Sent Events (placeholder)."""

from __future__ import annotations

from quart import Blueprint

blueprint = Blueprint("live", __name__)
