"""Sandboxed Jinja2 templating over a node's input (blocks/templating.py)."""

from __future__ import annotations

from typing import Any

import jinja2
import pytest
from jinja2.exceptions import SecurityError, TemplateSyntaxError, UndefinedError

from blocks.templating import (
    NodeOutputs,
    TemplateError,
    evaluate,
    is_template,
    node_references,
    parse_json_or_text,
    render_string,
    render_value,
    syntax_error,
)


@pytest.fixture
def context() -> dict[str, Any]:
    return {
        "trigger": {"n": 3, "name": "Ada", "tags": ["a", "b"], "flag": False, "nothing": None},
        "upstream": {"fetch": {"status": 200, "data": {"title": "Hi", "rows": [1, 2]}}},
    }


# -- render_value ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ trigger.n }}", 3),
        ("  {{ trigger.n }}  ", 3),
        ("{{ trigger.tags }}", ["a", "b"]),
        ("{{ upstream.fetch.data }}", {"title": "Hi", "rows": [1, 2]}),
        ("{{ trigger.flag }}", False),
        ("{{ trigger.nothing }}", None),
        ("{{ trigger.n * 2 + 1 }}", 7),
        ("{{ upstream['fetch'].status == 200 }}", True),
    ],
)
def test_lone_expression_keeps_its_native_type(
    context: dict[str, Any], source: str, expected: Any
) -> None:
    result = render_value(source, context)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("n={{ trigger.n }}", "n=3"),
        ("{{ trigger.n }}{{ trigger.n }}", "33"),
        ("{{ trigger.n }} and {{ trigger.name }}", "3 and Ada"),
        ("{% for t in trigger.tags %}{{ t }};{% endfor %}", "a;b;"),
        ("{# note #}{{ trigger.name }}", "Ada"),
    ],
)
def test_anything_else_renders_to_a_string(
    context: dict[str, Any], source: str, expected: str
) -> None:
    assert render_value(source, context) == expected


@pytest.mark.parametrize(
    "text", ["x", "", "plain text", "a\n", "a\n\n", "a\r\nb\r\n", "a\rb", " { } ", "50% {x}"]
)
def test_plain_text_renders_as_jinja_would(text: str) -> None:
    assert render_string(text, {}) == jinja2.Environment().from_string(text).render()


def test_render_value_recurses_into_dicts_and_lists(context: dict[str, Any]) -> None:
    value = {
        "plain": "no template here",
        "count": "{{ trigger.n }}",
        "nested": {"title": "Title: {{ upstream.fetch.data.title }}", "raw": 7},
        "list": ["{{ trigger.name }}", 1.5, None, True, ["{{ upstream.fetch.data.rows }}"]],
    }
    assert render_value(value, context) == {
        "plain": "no template here",
        "count": 3,
        "nested": {"title": "Title: Hi", "raw": 7},
        "list": ["Ada", 1.5, None, True, [[1, 2]]],
    }


def test_render_value_leaves_non_templates_untouched(context: dict[str, Any]) -> None:
    # A lone brace is not Jinja syntax
    assert render_value("{ not: a template }", context) == "{ not: a template }"
    assert render_value(42, context) == 42
    assert render_value(None, context) is None


def test_is_template() -> None:
    assert is_template("{{ x }}")
    assert is_template("a {% if x %}b{% endif %}")
    assert is_template("{# c #}")
    assert not is_template("plain { text }")
    assert not is_template(3)
    assert not is_template(None)


# -- StrictUndefined ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        "{{ trigger.missing }}",
        "value: {{ trigger.missing }}",
        "{{ upstream.nope.data }}",
        "{{ not_a_name }}",
    ],
)
def test_missing_key_raises(context: dict[str, Any], source: str) -> None:
    with pytest.raises(TemplateError, match="is undefined"):
        render_value(source, context)


# -- the sandbox -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        "{{ trigger.__class__ }}",
        "{{ trigger.__class__.__mro__ }}",
        "x {{ trigger.__class__ }}",
        "{{ trigger.name.__class__.__base__.__subclasses__() }}",
    ],
)
def test_sandbox_refuses_attribute_escapes(context: dict[str, Any], source: str) -> None:
    with pytest.raises(TemplateError, match="SecurityError"):
        render_value(source, context)
    with pytest.raises(SecurityError):
        render_string(source, context)


@pytest.mark.parametrize(
    "source",
    [
        "{{ trigger.update({'n': 99}) }}",
        "{{ trigger.pop('n') }}",
        "{{ trigger.tags.append('c') }}",
        "{{ trigger.clear() }}",
        "x{% set _ = trigger.tags.append('c') %}",
    ],
)
def test_sandbox_refuses_mutation(context: dict[str, Any], source: str) -> None:
    with pytest.raises(SecurityError):
        render_string(source, context)
    assert context["trigger"] == {
        "n": 3,
        "name": "Ada",
        "tags": ["a", "b"],
        "flag": False,
        "nothing": None,
    }


# -- evaluate ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("upstream.fetch.status == 200", True),
        ("{{ upstream.fetch.status == 200 }}", True),
        ("  {{ trigger.n > 5 }}  ", False),
        ("trigger.n", 3),
        ("trigger.tags | length", 2),
        ("'b' in trigger.tags", True),
        ("upstream.fetch.data", {"title": "Hi", "rows": [1, 2]}),
    ],
)
def test_evaluate_bare_and_wrapped_expressions(
    context: dict[str, Any], expression: str, expected: Any
) -> None:
    assert evaluate(expression, context) == expected


@pytest.mark.parametrize("key", ["items", "keys", "values", "get", "copy"])
def test_dot_access_reaches_json_keys_named_like_dict_methods(key: str) -> None:
    # Given an upstream output such as a paged API answer {"items": [...]}
    context = {"upstream": {"fetch": {"data": {key: [1, 2, 3]}}}}
    # When a template reads it with dot syntax, as documented for other keys
    # Then it gets the value, as it would with ["items"]
    assert render_value(f"{{{{ upstream.fetch.data.{key} }}}}", context) == [1, 2, 3]
    assert evaluate(f"upstream.fetch.data.{key} | length", context) == 3


def test_subscript_access_reaches_json_keys_named_like_dict_methods() -> None:
    context = {"upstream": {"fetch": {"data": {"items": [1, 2, 3]}}}}
    assert render_value("{{ upstream.fetch.data['items'] }}", context) == [1, 2, 3]


def test_evaluate_missing_name_raises(context: dict[str, Any]) -> None:
    with pytest.raises(UndefinedError):
        evaluate("trigger.missing", context)


def test_evaluate_refuses_attribute_escapes(context: dict[str, Any]) -> None:
    with pytest.raises(SecurityError):
        evaluate("trigger.__class__", context)


def test_evaluate_with_a_syntax_error_raises(context: dict[str, Any]) -> None:
    with pytest.raises(TemplateSyntaxError):
        evaluate("trigger.n ==", context)


# -- parse_json_or_text ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"a": 1, "b": [true, null]}', {"a": 1, "b": [True, None]}),
        ('  \n[1, "two"]\n ', [1, "two"]),
        ("42", 42),
        ("-0.5", -0.5),
        ("true", True),
        ("false", False),
        ("null", None),
        ("x", "x"),
        ("nope", "nope"),
        ('"quoted"', "quoted"),
        ("hello world", "hello world"),
        ("{not json}", "{not json}"),
        ("", ""),
        ("   ", "   "),
    ],
)
def test_parse_json_or_text(text: str, expected: Any) -> None:
    result = parse_json_or_text(text)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize("text", ["NaN", "Infinity", "-Infinity", "[NaN]"])
def test_non_json_constants_stay_text(text: str) -> None:
    # Python's json reads them as floats, which PostgreSQL's jsonb refuses
    assert parse_json_or_text(text) == text


def test_parse_json_or_text_reads_tojson_output() -> None:
    rendered = render_string("{{ trigger | tojson }}", {"trigger": {"a": [1, "<x>"]}})
    assert type(rendered) is str
    assert parse_json_or_text(rendered) == {"a": [1, "<x>"]}


# -- syntax_error ------------------------------------------------------------------------------


def test_syntax_error_is_none_when_it_compiles() -> None:
    assert syntax_error("Hello {{ name }}") is None
    assert syntax_error("{% for x in xs %}{{ x }}{% endfor %}") is None
    assert syntax_error("a == 1", expression=True) is None
    assert syntax_error("no markers at all") is None


@pytest.mark.parametrize(
    ("source", "expression"),
    [
        ("Hello {{ name", False),
        ("{% if x %}unclosed", False),
        ("{{ }}", False),
        ("{{ a == }}", False),
        ("a ==", True),
        ("{{ a == }}", True),
        ("(", True),
    ],
)
def test_syntax_error_reports_the_line(source: str, expression: bool) -> None:
    error = syntax_error(source, expression=expression)
    assert error is not None
    assert error.startswith("does not compile: line 1: ")


def test_syntax_error_reports_a_later_line() -> None:
    error = syntax_error("line one\nline two\n{% if %}")
    assert error is not None
    assert error.startswith("does not compile: line 3: ")


def test_render_string_of_a_broken_template_raises() -> None:
    with pytest.raises(TemplateSyntaxError):
        render_string("Hello {{ name", {"name": "x"})


# -- what is missing, said plainly -------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "message"),
    [
        # A JSON encoder's TypeError about StrictUndefined told the user nothing.
        (
            "{{ upstream.fetch.data.subtitle | tojson }}",
            "params.x: 'subtitle' is undefined here (the keys there: title, rows)",
        ),
        (
            "{{ upstream.shape.result }}",
            "params.x: 'shape' is undefined here (the keys there: fetch)",
        ),
        ("a {{ trigger.tags[5] }}", "params.x: no item 5 in a list of 2"),
        ("{{ nope }}", "params.x: 'nope' is undefined"),
        (
            "{{ nodes.late.data }}",
            "params.x: nodes.late is undefined: not an ancestor of this node with an output "
            "(those here: early)",
        ),
    ],
)
def test_an_undefined_name_is_reported_as_the_missing_name(
    context: dict[str, Any], source: str, message: str
) -> None:
    context["nodes"] = NodeOutputs(frozenset({"early"}), {"early": {"v": 1}, "late": {"v": 2}})
    with pytest.raises(TemplateError) as caught:
        render_value(source, context, "params.x")
    assert str(caught.value) == message


def test_nodes_reads_only_the_visible_outputs_and_serialises_as_json() -> None:
    nodes = NodeOutputs(frozenset({"a", "b"}), {"a": {"v": 1}, "c": {"v": 3}})
    context = {"nodes": nodes}
    assert render_value("{{ nodes.a.v }}", context) == 1
    assert render_value("{{ nodes['a'].v + 1 }}", context) == 2
    assert render_value("{{ nodes | tojson }}", context) == '{"a": {"v": 1}}'
    assert "b" not in nodes
    assert "c" not in nodes
    assert list(nodes) == ["a"]
    assert len(nodes) == 1
    # No dict methods on `nodes`: a node may be called "items".
    with pytest.raises(TemplateError, match=r"nodes\.items is undefined"):
        render_value("{{ nodes.items }}", context)


@pytest.mark.parametrize(
    ("source", "expression", "named", "dynamic"),
    [
        ("{{ nodes.a.x }} and {{ nodes['b'].y }}", False, {"a", "b"}, False),
        ("{% for k in nodes %}{{ k }}{% endfor %}", False, set(), True),
        ("{{ nodes[trigger.k] }} {{ nodes.c }}", False, {"c"}, True),
        ("nodes.c.ok and upstream.x", True, {"c"}, False),
        ("{{ upstream.nodes }}", False, set(), False),
        ("{{ broken", False, set(), False),
    ],
)
def test_node_references(source: str, expression: bool, named: set[str], dynamic: bool) -> None:
    assert node_references(source, expression=expression) == (named, dynamic)


# -- bounded work ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "why"),
    [
        ("{{ 7 ** 20000000 }}", "7 ** 20000000 is too large"),
        ("x {{ 'x' * 300000000 }}", "repeating 1 characters or items 300,000,000 times"),
        ("{{ 'a' | center(99999999) }}", "center's argument 99,999,999 is over the limit"),
        ("{{ 'a'.ljust(5000000) }}", "ljust's argument 5,000,000 is over the limit"),
        ("{{ '%999999999d' % 1 }}", "a format width of 999,999,999"),
    ],
)
def test_a_template_that_would_explode_is_refused_when_saved(source: str, why: str) -> None:
    error = syntax_error(source)
    assert error is not None
    assert error.startswith("is refused: ")
    assert why in error


@pytest.mark.parametrize(
    ("source", "why"),
    [
        ("{{ trigger.n ** 20000000 }}", "is too large"),
        ("{{ 'x' * trigger.n * 1000000 }}", "over the limit of 1,000,000"),
        ("{% set ns = namespace(s='x') %}{% for i in range(60) %}"
         "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}", "over the limit of 1,000,000"),
        ("{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}",
         "does too much work"),
        ("{% for i in range(20) %}{{ 'y' * 100000 }}{% endfor %}", "rendered text is over"),
        ("{{ '{:>999999999}'.format(1) }}", "a format width of 999,999,999"),
        ("{{ trigger.tags | join(',') | center(2000000) }}", "center's argument"),
        # Refused before the value is built (a 200 MB join would come first otherwise).
        ("{{ ((['x' * 1000000]) * 200) | join }}", "join would make over"),
        ("{{ ((['x' * 1000000]) * 200) | tojson }}", "tojson would make over"),
        ("{{ ('a' * 1000000) | replace('a', 'bb') }}", "replace would make over"),
        ("{{ ''.join(['x' * 900000] * 5) }}", "join would make over"),
        ("{% set ns = namespace(v=2 ** 60000) %}{% for i in range(30) %}"
         "{% set ns.v = ns.v * ns.v %}{% endfor %}{{ ns.v }}", "too large"),
    ],
)  # fmt: skip
def test_work_and_values_are_bounded_when_rendered(
    context: dict[str, Any], source: str, why: str
) -> None:
    with pytest.raises(TemplateError, match=why):
        render_value(source, context, "params.x")


def test_ordinary_templates_stay_within_the_bounds(context: dict[str, Any]) -> None:
    assert render_value("{{ 2 ** 10 }}", context) == 1024
    assert render_value("{{ '%d' | format(1700000000) }}", context) == "1700000000"
    assert render_value("{{ 'ab' * 3 }}", context) == "ababab"
    assert render_value("{% for t in range(1000) %}.{% endfor %}", context) == "." * 1000
    assert render_value("{{ lipsum is defined }}", context) is False
