"""JSON values as PostgreSQL can store them."""

from __future__ import annotations

from typing import Any


def without_nul(value: Any) -> Any:
    """The JSON value with every NUL character (which PostgreSQL refuses) made U+FFFD."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {without_nul(k): without_nul(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [without_nul(v) for v in value]
    return value
