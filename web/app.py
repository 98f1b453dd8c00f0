"""The app factory: create_app(weft, settings) wires blueprints, schema docs and error
handlers around the runner's facade."""

from __future__ import annotations

from typing import Any

import orjson
from quart import Quart, Request
from quart_cors import cors
from quart_schema import Info, QuartSchema

from runner.facade import SIGNATURE_HEADER, Weft
from runner.settings import Settings
from web import artifacts, docs, hooks, live, meta, page, runs, schedules, secrets, workflows
from web.auth import install_auth
from web.context import EXTENSION_KEY
from web.errors import ApiError, register_error_handlers
from web.metrics import MeasuredQuart
from web.metrics import blueprint as metrics_blueprint
from web.openapi import WeftOpenAPIProvider


class WeftRequest(Request):
    """Parses any non-empty body as JSON (whatever its content type); empty is None."""

    async def get_json(self, force: bool = True, silent: bool = False, cache: bool = True) -> Any:
        if cache and self._cached_json[silent] is not Ellipsis:
            return self._cached_json[silent]
        raw = await self.get_data(cache=cache, as_text=False)
        result: Any = None
        if raw.strip():
            try:
                result = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                if not silent:
                    raise ApiError(
                        400, "malformed_json", f"the body is not valid JSON: {exc}"
                    ) from None
            # PostgreSQL cannot store NUL in text or jsonb: refuse it here, not with a 500.
            if b"u0000" in raw and contains_nul(result):
                raise ApiError(
                    422,
                    "invalid_request",
                    "strings in the body must not contain the NUL character (\\u0000)",
                )
        if cache:
            self._cached_json[silent] = result
        return result


def contains_nul(value: Any) -> bool:
    """True when a JSON value holds a NUL character in any string or key."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(contains_nul(k) or contains_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(contains_nul(v) for v in value)
    return False


def create_app(weft: Weft, settings: Settings) -> Quart:
    """Build the Quart app around the runner's facade."""
    app = MeasuredQuart(__name__, static_folder=None)
    app.metrics = weft.metrics  # every HTTP response counted (see web/metrics.py)
    app.request_class = WeftRequest
    app.config["MAX_CONTENT_LENGTH"] = settings.weft_max_body_bytes
    app.config["QUART_SCHEMA_SWAGGER_JS_URL"] = "/docs/assets/swagger-ui-bundle.js"
    app.config["QUART_SCHEMA_SWAGGER_CSS_URL"] = "/docs/assets/swagger-ui.css"
    app.extensions[EXTENSION_KEY] = weft
    QuartSchema(
        app,
        info=Info(
            title="weft",
            version="0.1.0",
            description="Run node-based workflows: graphs of blocks, persisted, streamed live.",
        ),
        redoc_ui_path=None,
        scalar_ui_path=None,
        openapi_provider_class=WeftOpenAPIProvider,
    )
    for blueprint in (
        meta.blueprint,
        workflows.blueprint,
        runs.blueprint,
        hooks.blueprint,
        artifacts.blueprint,
        docs.blueprint,
        live.blueprint,
        page.blueprint,
        schedules.blueprint,
        secrets.blueprint,
        metrics_blueprint,
    ):
        app.register_blueprint(blueprint)
    register_error_handlers(app)
    if settings.weft_api_token:
        install_auth(app, settings.weft_api_token)
    if settings.cors_origin_list:
        app = cors(
            app,
            allow_origin=settings.cors_origin_list,
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key", SIGNATURE_HEADER],
            allow_methods=["GET", "POST", "PUT", "DELETE", "OPTIONS"],
            expose_headers=["Location", "Idempotent-Replayed"],
        )
    return app
