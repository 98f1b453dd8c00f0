"""Sandboxed Jinja2 templating over a node's input, shared by the runner and the blocks."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from functools import lru_cache
from typing import Any

import orjson
from jinja2 import StrictUndefined, TemplateSyntaxError, meta
from jinja2 import nodes as ast
from jinja2.utils import missing
from markupsafe import Markup

from blocks.sandbox import BoundedSandbox, refused_constant, work_budget

# A value that is one whole expression keeps its native type ({{ upstream.a.data }} → a dict);
# anything else renders to a string.
_WHOLE_EXPRESSION = re.compile(r"^\s*\{\{(?P<expr>(?:(?!\{\{|\}\}).)*)\}\}\s*$", re.DOTALL)
_MARKERS = ("{{", "{%", "{#")
_NEWLINES = re.compile(r"\r\n|\r|\n")
_JSON_STARTS = frozenset('{["-0123456789tfn')


MAX_KEYS_SHOWN = 12


class TemplateError(ValueError):
    """A templated param could not be rendered; the message names the param and the cause."""


class NodeOutputs(Mapping[str, Any]):
    """`nodes` in a template: the outputs of the node's ancestors that have one, resolved
    from the run's state when read (never copied into the node's input)."""

    __slots__ = ("_outputs", "_visible")

    def __init__(self, visible: frozenset[str], outputs: Mapping[str, Any]) -> None:
        self._visible = visible
        self._outputs = outputs

    def __getitem__(self, node_id: str) -> Any:
        if node_id not in self._visible:
            raise KeyError(node_id)
        return self._outputs[node_id]

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._visible and node_id in self._outputs

    def __iter__(self) -> Iterator[str]:
        return (n for n in self._outputs if n in self._visible)

    def __len__(self) -> int:
        return sum(1 for _ in self)


NO_NODES = NodeOutputs(frozenset(), {})


class SecretValues(Mapping[str, str]):
    """`secrets` in a template: the secrets' values by name (for the nodes that use them)."""

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, str] | None = None) -> None:
        self._values = dict(values or {})

    def __getitem__(self, name: str) -> str:
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


NO_SECRETS = SecretValues()


class _Missing(StrictUndefined):
    """StrictUndefined whose message says what was missing and what was there instead."""

    __slots__ = ()

    @property
    def _undefined_message(self) -> str:
        if self._undefined_hint or self._undefined_obj is missing:
            return str(super()._undefined_message)
        owner, name = self._undefined_obj, self._undefined_name
        if isinstance(owner, NodeOutputs):
            return (
                f"nodes.{name} is undefined: not an ancestor of this node with an output "
                f"(those here: {_names(owner)})"
            )
        if isinstance(owner, SecretValues):  # its names only: they are no secret
            return f"secrets.{name} is not defined (POST /secrets defines it)"
        if isinstance(owner, Mapping):
            return f"{name!r} is undefined here (the keys there: {_names(owner)})"
        if isinstance(owner, list):
            return f"no item {name!r} in a list of {len(owner)}"
        return f"{name!r} is undefined on a {type(owner).__name__}"


def _names(mapping: Mapping[Any, Any]) -> str:
    keys = [str(k) for k in mapping]
    shown = ", ".join(keys[:MAX_KEYS_SHOWN]) or "none"
    return shown + (f", … ({len(keys)} in all)" if len(keys) > MAX_KEYS_SHOWN else "")


class _JsonSandbox(BoundedSandbox):
    """The sandbox, with dot access reading JSON keys before dict methods.

    Node data is JSON: `upstream.fetch.data.items` must be the "items" key, not dict.items.
    """

    def getattr(self, obj: Any, attribute: str) -> Any:
        if isinstance(obj, Mapping):
            if attribute in obj:
                return obj[attribute]
            if isinstance(obj, NodeOutputs | SecretValues):  # no dict methods on these
                return self.undefined(obj=obj, name=attribute)
        return super().getattr(obj, attribute)


def _dumps(value: Any, **kwargs: Any) -> str:
    # `| tojson` of something undefined names what is missing, not a JSON encoder's TypeError.
    def default(obj: Any) -> Any:
        if isinstance(obj, StrictUndefined):
            obj._fail_with_undefined_error()
        if isinstance(obj, Mapping):
            return dict(obj)
        raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")

    return json.dumps(value, default=default, **kwargs)


_env = _JsonSandbox(undefined=_Missing, autoescape=False)
_env.policies["json.dumps_function"] = _dumps


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
    with work_budget():
        if match is not None:
            return _unwrap(_compile_expression(match.group("expr").strip())(**context))
        return _compile_template(source).render(**context)


def _plain_text(source: str) -> str:
    # What Jinja makes of text without syntax: newlines become "\n", one trailing one goes.
    text = _NEWLINES.sub("\n", source)
    return text[:-1] if text.endswith("\n") else text


def render_value(value: Any, context: dict[str, Any], path: str = "") -> Any:
    """Render every template found in a JSON-like value, recursively.

    A template that fails raises TemplateError naming `path` (e.g. "params.url") and why.
    """
    if isinstance(value, str):
        if not is_template(value):
            return value
        try:
            return render_string(value, context)
        except Exception as exc:
            raise TemplateError(f"{path or 'template'}: {_why(exc)}") from None
    if isinstance(value, dict):
        return {k: render_value(v, context, f"{path}.{k}" if path else k) for k, v in value.items()}
    if isinstance(value, list):
        return [render_value(v, context, f"{path}.{i}") for i, v in enumerate(value)]
    return value


def _why(exc: Exception) -> str:
    from jinja2.exceptions import UndefinedError

    if isinstance(exc, UndefinedError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def evaluate(expression: str, context: dict[str, Any]) -> Any:
    """Evaluate a bare Jinja2 expression (`upstream.a.status == 200`), or a `{{ }}` one."""
    match = _WHOLE_EXPRESSION.match(expression)
    expr = match.group("expr") if match is not None else expression
    with work_budget():
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


@lru_cache(maxsize=4096)  # params models check their templates each time a node runs
def syntax_error(source: str, *, expression: bool = False) -> str | None:
    """Why a template (or a bare expression) is refused when saved, as a phrase after its
    name: "does not compile: line N: …", or "is refused: …" (a bound its constants break,
    see blocks/sandbox.py); None when it is fine."""
    if not expression and not is_template(source):
        return None
    match = _WHOLE_EXPRESSION.match(source)
    as_expression = expression or match is not None
    text = (match.group("expr") if match else source).strip() if as_expression else source
    try:
        if as_expression:
            _compile_expression(text)
        else:
            _compile_template(source)
    except TemplateSyntaxError as exc:
        return f"does not compile: line {exc.lineno}: {exc.message}"
    refused = refused_constant(_env, _env.parse("{{ " + text + " }}" if as_expression else text))
    return None if refused is None else f"is refused: {refused}"


def node_references(
    source: str, *, expression: bool = False, name: str = "nodes"
) -> tuple[set[str], bool]:
    """The keys a template (or a bare expression) reads of `nodes` (or of `name`, such as
    `secrets`) as `nodes.<id>` or `nodes['<id>']`, and whether it also uses it in a way that
    names none (a loop, a variable key). A template that does not compile references
    nothing."""
    match = _WHOLE_EXPRESSION.match(source)
    if expression and match is None:
        source = "{{ " + source + " }}"
    try:
        tree = _env.parse(source)
    except TemplateSyntaxError:
        return set(), False
    named: set[str] = set()
    static = 0
    for node in tree.find_all((ast.Getattr, ast.Getitem)):
        assert isinstance(node, ast.Getattr | ast.Getitem)
        target = node.node
        if not (isinstance(target, ast.Name) and target.name == name):
            continue
        if isinstance(node, ast.Getattr):
            named.add(node.attr)
            static += 1
        elif isinstance(node.arg, ast.Const) and isinstance(node.arg.value, str):
            named.add(node.arg.value)
            static += 1
    uses = sum(1 for n in tree.find_all(ast.Name) if getattr(n, "name", None) == name)
    return named, uses > static


@lru_cache(maxsize=4096)
def undeclared_names(source: str) -> frozenset[str]:
    """The names a template reads from its context and does not expect to miss: not those
    it sets itself anywhere (`set`, loop variables, macros), nor Jinja's globals, nor those
    it guards (`x | default(…)`, `x is defined`). A template that does not compile reads
    nothing (its syntax error is reported on its own)."""
    try:
        tree = _env.parse(source)
    except TemplateSyntaxError:
        return frozenset()
    names = meta.find_undeclared_variables(tree) - set(_env.globals)
    stored = {n.name for n in tree.find_all(ast.Name) if getattr(n, "ctx", "") == "store"}
    guarded: set[str] = set()
    for node in tree.find_all((ast.Filter, ast.Test)):
        assert isinstance(node, ast.Filter | ast.Test)
        if node.name in _GUARDS and node.node is not None:
            guarded.update(_root_names(node.node))
    return frozenset(names - stored - guarded)


# A name read through these expects it may be missing: `x | default('')`, `x is defined`.
_GUARDS = frozenset({"default", "d", "defined", "undefined"})


def _root_names(node: ast.Node) -> set[str]:
    """The name an expression reads through (`a` of `a.b['c']`), if it is one."""
    while isinstance(node, ast.Getattr | ast.Getitem):
        node = node.node
    return {node.name} if isinstance(node, ast.Name) else set()


def _unwrap(value: Any) -> Any:
    # StrictUndefined raises on use, but an expression that yields Undefined must fail too.
    if isinstance(value, StrictUndefined):
        str(value)
    if isinstance(value, Markup):  # e.g. from `| tojson`: plain text from here on
        return str(value)
    return value
