"""GET /metrics (Prometheus's text format), and the count and timing of every HTTP response.

Each process serves its own figures (see runner/metrics.py): with WEB_CONCURRENCY above 1,
a scrape of the shared port reaches one worker, whichever the kernel picks. The route needs
the API token like the rest of the API when WEFT_API_TOKEN is set.

Responses are labelled by route template (`/runs/{run_id}`, never the path asked for), a
known method or "OTHER", and status; a path no route matches is "unmatched". Websockets are
not responses: `weft_live_subscribers` counts them.
"""

from __future__ import annotations

import functools
import re
import time

from quart import Blueprint, Quart, Request, Response
from quart.typing import ResponseTypes

from runner.metrics import CONTENT_TYPE, Metrics
from web.context import weft

blueprint = Blueprint("metrics", __name__)

UNMATCHED = "unmatched"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_PARAMETER = re.compile(r"<(?:[^<>:]+:)?([^<>]+)>")


@blueprint.get("/metrics")
async def metrics() -> Response:
    """This process's metrics in Prometheus's text format (with several worker processes,
    the figures of the one that answers)."""
    return Response(await weft().render_metrics(), status=200, content_type=CONTENT_TYPE)


@functools.lru_cache(maxsize=256)  # one entry per route of the app
def route_template(rule: str) -> str:
    """`/runs/{run_id}` for the rule `/runs/<uuid:run_id>`."""
    return _PARAMETER.sub(r"{\1}", rule)


class MeasuredQuart(Quart):
    """Quart, reporting each HTTP response to the process's metrics (when it has them)."""

    metrics: Metrics | None = None

    async def handle_request(self, request: Request) -> ResponseTypes:
        metrics = self.metrics
        if metrics is None:
            return await super().handle_request(request)
        began = time.perf_counter()
        response = await super().handle_request(request)
        rule = request.url_rule
        metrics.request_served(
            request.method if request.method in METHODS else "OTHER",
            UNMATCHED if rule is None else route_template(rule.rule),
            response.status_code,
            time.perf_counter() - began,
        )
        return response
