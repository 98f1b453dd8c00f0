"""A Jinja2 sandbox that bounds the work a template may make, as well as what it may reach.

Jinja's sandbox refuses attribute escapes but not work: `{{ 7 ** 20000000 }}` was folded
while the template compiled (26 s with the event loop stalled), and `{{ 'x' * 300000000 }}`
built a 300 MB string. Here:
- the operators that can explode (`**`, `*`, `+`, `%`) are intercepted, which also stops
  Jinja from folding them at compile time, and refused past the bounds below;
- every value a template builds (an operator's, a call's, a filter's, a `~` concatenation,
  a namespace attribute, the rendered output) is refused past MAX_CHARS characters or items,
  and a width or count argument past it is refused before anything is built;
- each render has a work budget (MAX_WORK): a loop iteration, a call, a filter or a
  comparison costs a unit, plus what it reads and builds (an item of a list or dict, 64
  characters of a string); a template that spends it fails.
What a refused template raises is TemplateLimitError, with what was refused.
"""

from __future__ import annotations

import functools
import re
import string
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from jinja2 import Environment, nodes
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import Namespace
from jinja2.visitor import NodeTransformer

# The largest string, list or dict a template may build (characters or items).
MAX_CHARS = 1_000_000
# The work one render may do (see the module docstring): about a second of it at most.
MAX_WORK = 1_000_000
# The largest integer a power may make, in bits (about 20,000 decimal digits).
MAX_POWER_BITS = 65_536

# Filters and str methods whose number arguments say how large a value to build.
_SIZING_FILTERS = frozenset({"center", "indent", "wordwrap", "truncate", "batch"})
_SIZING_METHODS = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs"})
_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")
_FORMAT_WIDTH = re.compile(r"(\d+)")


class TemplateLimitError(ValueError):
    """A template would do more work or build a larger value than weft allows."""


_work: ContextVar[list[int] | None] = ContextVar("weft_template_work", default=None)


@contextmanager
def work_budget() -> Iterator[None]:
    """Give the renders inside a fresh budget of MAX_WORK units (a nested one shares it)."""
    if _work.get() is not None:
        yield
        return
    token = _work.set([MAX_WORK])
    try:
        yield
    finally:
        _work.reset(token)


def charge(units: int) -> None:
    """Spend `units` of the render's budget (nothing outside a render: compiling)."""
    left = _work.get()
    if left is None:
        return
    left[0] -= units
    if left[0] < 0:
        raise TemplateLimitError(
            f"the template does too much work (over {MAX_WORK:,} steps: loops and values built)"
        )


def _cost(value: Any) -> int:
    if isinstance(value, str | bytes):
        return len(value) // 64
    if isinstance(value, list | tuple | dict | set):
        return len(value)
    return 0


def charged(value: Any) -> Any:
    """The value, once charged for reading it."""
    charge(1 + _cost(value))
    return value


def sized(value: Any) -> Any:
    """A value built, once charged for; TemplateLimitError when it is over MAX_CHARS."""
    if isinstance(value, str | list | tuple | dict | set | bytes) and len(value) > MAX_CHARS:
        raise TemplateLimitError(
            f"a value of {len(value):,} characters or items is over the limit of {MAX_CHARS:,}"
        )
    return charged(value)


def _estimated_chars(value: Any, depth: int = 0) -> int:
    """About how many characters `value` makes as text (stops counting past MAX_CHARS)."""
    if isinstance(value, str | bytes):
        return len(value)
    if isinstance(value, dict):
        value = [*value.keys(), *value.values()]
    if isinstance(value, list | tuple | set) and depth < 4:
        total = len(value)
        for item in value:
            total += _estimated_chars(item, depth + 1)
            if total > MAX_CHARS:
                break
        return total
    return 16


def _would_build(chars: int, what: str) -> None:
    """Refuse, before building it, a value of `chars` characters over MAX_CHARS."""
    if chars > MAX_CHARS:
        raise TemplateLimitError(
            f"{what} would make over {MAX_CHARS:,} characters (about {chars:,})"
        )


_JINJA_STATE = (Context, Environment, nodes.EvalContext)
# What a filter or str method would build, estimated from its arguments before it runs.
_JOINS = frozenset({"join", "tojson", "string", "list", "pprint", "urlencode", "dictsort"})


def _before(name: str, args: tuple[Any, ...]) -> None:
    if name in _JOINS and args:
        _would_build(_estimated_chars(args[0]), name)
    elif name == "replace" and len(args) >= 3 and isinstance(args[0], str):
        old, new = str(args[1]), str(args[2])
        times = args[0].count(old) if old else len(args[0]) + 1
        _would_build(len(args[0]) + times * max(0, len(new) - len(old)), name)


def _small(number: Any, what: str) -> None:
    if isinstance(number, int) and not isinstance(number, bool) and abs(number) > MAX_CHARS:
        raise TemplateLimitError(f"{what} {number:,} is over the limit of {MAX_CHARS:,}")


def _percent_format(template: str, args: Any) -> None:
    """Refuse a %-format whose widths or precisions would build a huge string."""
    for width, precision in _PERCENT_SPEC.findall(template):
        if "*" in (width, precision):
            raise TemplateLimitError("a * width in a %-format is not allowed in templates")
        for number in (width, precision):
            if number:
                _small(int(number), "a format width of")


def _brace_format(template: str) -> None:
    """Refuse a str.format whose field widths would build a huge string."""
    for _, _, spec, _ in string.Formatter().parse(template):
        for number in _FORMAT_WIDTH.findall(spec or ""):
            _small(int(number), "a format width of")


class _BoundedNamespace(Namespace):
    """`namespace()`: its attributes are bounded values (a loop cannot double one forever)."""

    def __setitem__(self, name: str, value: Any) -> None:
        super().__setitem__(name, sized(value))


def _loop(iterable: Iterable[Any]) -> Iterator[Any]:
    """What a template's for loop iterates over: each item costs a unit of the budget."""
    for item in iterable:
        charge(1)
        yield item


def _bounded_join(pieces: Iterable[str]) -> str:
    """The rendered output, refused once it grows past MAX_CHARS."""
    out: list[str] = []
    total = 0
    for piece in pieces:
        total += len(piece)
        if total > MAX_CHARS:
            raise TemplateLimitError(f"the rendered text is over the limit of {MAX_CHARS:,}")
        out.append(piece)
    return "".join(out)


class _Bounds(NodeTransformer):
    """Rewrites a parsed template: loops iterate through _loop, `~` goes through sized, and
    what a comparison reads (`in`, `==` on long values) through charged."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = _call("_weft_loop", node.iter)  # type: ignore[arg-type]
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return _call("_weft_sized", node)

    def visit_Compare(self, node: nodes.Compare) -> nodes.Node:
        self.generic_visit(node)
        node.expr = _call("_weft_charged", node.expr)
        for operand in node.ops:
            operand.expr = _call("_weft_charged", operand.expr)
        return node


def _call(name: str, arg: nodes.Expr) -> nodes.Call:
    call = nodes.Call(nodes.Name(name, "load"), [arg], [], None, None)
    call.set_lineno(arg.lineno)
    return call


def _bounded_filter(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)  # keeps jinja's pass_context / pass_environment marks
    def bounded(*args: Any, **kwargs: Any) -> Any:
        for arg in args:
            charged(arg)
        # Past jinja's own first argument (a context), if the filter takes one.
        _before(name, tuple(a for a in args if not isinstance(a, _JINJA_STATE)))
        if name in _SIZING_FILTERS:
            for arg in (*args[1:], *kwargs.values()):
                _small(arg, f"{name}'s argument")
        if name == "format" and args and isinstance(args[0], str):
            _percent_format(args[0], args[1:])
        return sized(fn(*args, **kwargs))

    return bounded


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox with bounded work and values (see the module docstring)."""

    intercepted_binops = frozenset({"+", "*", "**", "%"})
    concat = staticmethod(_bounded_join)

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.globals.pop("lipsum", None)  # makes text of any size
        self.globals.update(
            namespace=_BoundedNamespace, _weft_loop=_loop, _weft_sized=sized, _weft_charged=charged
        )
        self.filters = {k: _bounded_filter(k, f) for k, f in self.filters.items()}

    def compile(  # type: ignore[override]
        self, source: Any, name: Any = None, filename: Any = None, **kw: Any
    ) -> Any:
        if isinstance(source, str):
            source = self._parse(source, name, filename)
        source = _Bounds().visit(source)
        source.set_environment(self)
        return super().compile(source, name, filename, **kw)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(left, int) and isinstance(right, int):
            if right > 0 and abs(left) > 1 and abs(left).bit_length() * right > MAX_POWER_BITS:
                raise TemplateLimitError(
                    f"{left} ** {right} is too large (over {MAX_POWER_BITS:,} bits)"
                )
        elif operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(times, int):
                    if len(seq) * times > MAX_CHARS:
                        raise TemplateLimitError(
                            f"repeating {len(seq):,} characters or items {times:,} times is "
                            f"over the limit of {MAX_CHARS:,}"
                        )
        if operator == "*" and isinstance(left, int) and isinstance(right, int):
            if abs(left).bit_length() + abs(right).bit_length() > MAX_POWER_BITS:
                raise TemplateLimitError(f"a product over {MAX_POWER_BITS:,} bits is too large")
        elif operator == "%" and isinstance(left, str):
            _percent_format(left, right)
        return sized(super().call_binop(context, operator, left, right))

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        receiver = getattr(__obj, "__self__", None)
        if isinstance(receiver, str):
            method = getattr(__obj, "__name__", "")
            if method == "join" and args:
                _would_build(_estimated_chars(args[0]) + len(receiver) * 1024, "join")
            elif method == "replace":
                _before("replace", (receiver, *args))
        if isinstance(receiver, str) and getattr(__obj, "__name__", "") in _SIZING_METHODS:
            for arg in (*args, *kwargs.values()):
                _small(arg, f"{__obj.__name__}'s argument")
        for value in (receiver, *args, *kwargs.values()):
            charged(value)
        return sized(super().call(__context, __obj, *args, **kwargs))

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        template: str = value.__self__

        def bounded(*args: Any, **kwargs: Any) -> str:
            _brace_format(template)
            return str(sized(wrapped(*args, **kwargs)))

        return bounded


def refused_constant(env: BoundedSandbox, tree: nodes.Template) -> str | None:
    """Why a template that will be refused whatever its data is refused (an operator, a
    sizing filter or method on constants), or None: what saving a graph can already say."""
    for binop in tree.find_all(nodes.BinExpr):
        assert isinstance(binop, nodes.BinExpr)
        if binop.operator not in env.intercepted_binops:
            continue
        try:
            left, right = binop.left.as_const(), binop.right.as_const()
            env.call_binop(None, binop.operator, left, right)  # type: ignore[arg-type]
        except TemplateLimitError as exc:
            return str(exc)
        except Exception:  # not constant, or an error the render will report
            continue
    for call in tree.find_all((nodes.Filter, nodes.Call)):
        name = call.name if isinstance(call, nodes.Filter) else _method_name(call)
        if name not in _SIZING_FILTERS | _SIZING_METHODS:
            continue
        try:
            values = [a.as_const() for a in call.args]  # type: ignore[attr-defined]
            for value in values:
                _small(value, f"{name}'s argument")
        except TemplateLimitError as exc:
            return str(exc)
        except Exception:
            continue
    return None


def _method_name(call: nodes.Node) -> str | None:
    target = getattr(call, "node", None)
    return target.attr if isinstance(target, nodes.Getattr) else None
