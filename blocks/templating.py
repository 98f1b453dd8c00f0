"""Sandboxed Jinja2 templating over a node's input, shared by the runner and the blocks."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

import orjson
from jinja2 import StrictUndefined, TemplateSyntaxError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markupsafe import Markup

# A value that is one whole expression keeps its native type ({{ upstream.a.data }} → a dict);
# anything else renders to a string.
_WHOLE_EXPRESSION = re.compile(r"^\s*\{\{(?P<expr>(?:(?!\{\{|\}\}).)*)\}\}\s*$", re.DOTALL)
_MARKERS = ("{{", "{%", "{#")
_NEWLINES = re.compile(r"\r\n|\r|\n")
_JSON_STARTS = frozenset('{["-0123456789tfn')


class _JsonSandbox(ImmutableSandboxedEnvironment):
    """The sandbox, with dot access reading JSON keys before dict methods.

    Node data is JSON: `upstream.fetch.data.items` must be the "items" key, not dict.items.
    """

    def getattr(self, obj: Any, attribute: str) -> Any:
        if isinstance(obj, dict) and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)


_env = _JsonSandbox(undefined=StrictUndefined, autoescape=False)


def is_template(value: object) -> bool:
    """True when a string holds Jinja2 syntax and so is rendered before use."""
    return isinstance(value, str) and any(m in value for m in _MARKERS)


@lru_cache(maxsize=4096)
def _compile_expression(expr: str) -> Any:
    return _env.compile_expression(expr, undefined_to_none=False)


@lru_cache(maxsize=4096)
def _compile_template(source: str) -> Any:
    return _env.from_string(source)


def render_string(source: str, context: dict[str, Any]) -> Any:
    """Render one templated string; a lone `{{ expr }}` returns the expression's value."""
    if not is_template(source):  # plain text: Jinja's result without Jinja's per-render cost
        return _plain_text(source)
    match = _WHOLE_EXPRESSION.match(source)
    if match is not None:
        return _unwrap(_compile_expression(match.group("expr").strip())(**context))
    return _compile_template(source).render(**context)


def _plain_text(source: str) -> str:
    # What Jinja makes of text without syntax: newlines become "\n", one trailing one goes.
    text = _NEWLINES.sub("\n", source)
    return text[:-1] if text.endswith("\n") else text


def render_value(value: Any, context: dict[str, Any]) -> Any:
    """Render every template found in a JSON-like value, recursively."""
    if isinstance(value, str):
        return render_string(value, context) if is_template(value) else value
    if isinstance(value, dict):
        return {k: render_value(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [render_value(v, context) for v in value]
    return value


def evaluate(expression: str, context: dict[str, Any]) -> Any:
    """Evaluate a bare Jinja2 expression (`upstream.a.status == 200`), or a `{{ }}` one."""
    match = _WHOLE_EXPRESSION.match(expression)
    expr = match.group("expr") if match is not None else expression
    return _unwrap(_compile_expression(expr.strip())(**context))


def parse_json_or_text(text: str) -> Any:
    """The rendering parsed as JSON when it is JSON, else the string itself."""
    stripped = text.strip()
    if not stripped or stripped[0] not in _JSON_STARTS:  # cheaper than a failed parse
        return text
    try:
        # orjson: strict JSON (no NaN or Infinity, which PostgreSQL's jsonb refuses).
        return orjson.loads(str(stripped))
    except orjson.JSONDecodeError:
        return text


def syntax_error(source: str, *, expression: bool = False) -> str | None:
    """The syntax error of a template (or of a bare expression), or None when it compiles."""
    match = _WHOLE_EXPRESSION.match(source)
    try:
        if expression or match is not None:
            _compile_expression((match.group("expr") if match else source).strip())
        else:
            _compile_template(source)
    except TemplateSyntaxError as exc:
        return f"line {exc.lineno}: {exc.message}"
    return None


def _unwrap(value: Any) -> Any:
    # StrictUndefined raises on use, but an expression that yields Undefined must fail too.
    if isinstance(value, StrictUndefined):
        str(value)
    if isinstance(value, Markup):  # e.g. from `| tojson`: plain text from here on
        return str(value)
    return value
