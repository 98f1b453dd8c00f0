"""Access: with WEFT_API_TOKEN set, every API route and websocket needs the token.

REST sends `Authorization: Bearer <token>`; a websocket may pass `?token=<token>` instead
(browsers cannot set headers on websockets). Open to all: /healthz, /hooks/* (webhook
callers authenticate by signature), and the static page, docs and API description.
"""

from __future__ import annotations

import hmac

from quart import Quart, request, websocket

from web.errors import ApiError

PUBLIC_PATHS = frozenset({"/", "/healthz", "/openapi.json", "/docs"})
PUBLIC_PREFIXES = ("/hooks/", "/static/", "/docs/assets/")


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def _bearer(header: str | None) -> str | None:
    if header and header[:7].lower() == "bearer ":
        return header[7:].strip()
    return None


def _matches(given: str | None, token: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), token.encode())


def install_auth(app: Quart, token: str) -> None:
    """Require `token` on every non-public route and websocket of `app`."""

    @app.before_request
    async def require_token() -> None:
        if request.method == "OPTIONS" or is_public(request.path):
            return
        if not _matches(_bearer(request.headers.get("Authorization")), token):
            raise ApiError(
                401, "unauthorized", "this API needs the header Authorization: Bearer <token>"
            )

    @app.before_websocket
    async def require_websocket_token() -> None:
        given = _bearer(websocket.headers.get("Authorization")) or websocket.args.get("token")
        if not _matches(given, token):
            raise ApiError(
                401, "unauthorized", "pass Authorization: Bearer <token> or ?token=<token>"
            )
