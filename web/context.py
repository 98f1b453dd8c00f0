"""The Weft facade of the app handling the current request (set by the app factory)."""

from __future__ import annotations

from typing import cast

from quart import current_app

from runner.facade import Weft

EXTENSION_KEY = "weft"


def weft() -> Weft:
    """The runner's facade for this request's app."""
    return cast(Weft, current_app.extensions[EXTENSION_KEY])
